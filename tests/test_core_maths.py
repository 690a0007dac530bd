"""Known answers for kernels, schedule, sampler, sigma* search and DSST."""
import numpy as np
import pytest
import torch

from conftest import smooth_image
from dynface.core.dsst import DSST, calibrate_tau, expected_blur_gap, start_steps
from dynface.core.kernels import gaussian_blur, gaussian_kernel1d
from dynface.core.schedule import Schedule, ddim_step, ddpm_step, eps_from_x0, space_timesteps, tweedie_x0
from dynface.core.sigma_label import sigma_grid, sigma_star
from dynface.sampling.chain import sample, start_from_guidance
from dynface.sampling.denoiser import Denoiser, SampleStats
from dynface.sampling.guidance import Guidance, GuidanceStep, GuidedModel, guidance_loss


def test_kernel_normalised_and_variance():
    k = gaussian_kernel1d(torch.tensor([2.0]), 10)[0]
    assert torch.isclose(k.sum(), torch.tensor(1.0))
    x = torch.arange(-10, 11).float()
    assert abs(float((k * x**2).sum()) - 4.0) < 1e-3  # variance sigma^2


def test_blur_preserves_constant_and_mean():
    x = torch.full((2, 3, 32, 32), 0.25)
    assert torch.allclose(gaussian_blur(x, torch.tensor([1.0, 3.0])), x, atol=1e-6)


def test_blur_batched_sigmas_match_single_calls():
    x = smooth_image(32)
    xb = x.repeat(2, 1, 1, 1)
    out = gaussian_blur(xb, torch.tensor([0.7, 2.0]))
    assert torch.allclose(out[0:1], gaussian_blur(x, 0.7), atol=1e-6)
    assert torch.allclose(out[1:2], gaussian_blur(x, 2.0, radius=6), atol=1e-6)


def test_ddpm_equals_ddim_eta1_mean_and_respacing():
    s = Schedule.linear()
    x = torch.randn(2, 3, 8, 8)
    eps = torch.randn_like(x)
    a_t, a_p = s.abar(500), s.abar(499)
    assert torch.allclose(ddpm_step(x, eps, a_t, a_p), ddim_step(x, eps, a_t, a_p, eta=1.0), atol=1e-5)
    # Tweedie inverts the forward process exactly
    x0 = torch.randn_like(x)
    xt = s.q_sample(x0, torch.tensor([700, 700]), eps)
    assert torch.allclose(tweedie_x0(xt, eps, s.abar(700)), x0, atol=1e-3)
    ts = space_timesteps(1000, 10, start=700)
    assert ts[0] == 700 and ts[-1] == 0 and len(ts) == 10 and all(a > b for a, b in zip(ts, ts[1:]))
    assert space_timesteps(1000, 5000, start=20) == list(range(20, -1, -1))


class DeltaPrior(torch.nn.Module):
    """The exact eps-model of a data distribution that is a single image x*."""

    def __init__(self, target, schedule):
        super().__init__()
        self.target, self.schedule = target, schedule

    def forward(self, x, t, cond=None):
        return eps_from_x0(x, self.target, self.schedule.abar(t[0])), None


@pytest.mark.parametrize("steps,eta", [(1000, 1.0), (20, 1.0), (20, 0.0)])
def test_sampler_with_closed_form_prior_ends_at_the_image(steps, eta):
    s = Schedule.linear()
    target = smooth_image(32)
    gen = torch.Generator().manual_seed(0)
    ts = space_timesteps(1000, steps, start=999)
    x = torch.randn(1, 3, 32, 32, generator=gen)
    g = Guidance(gaussian_blur(target, 1.0)[None], torch.tensor([[1.0]]), torch.tensor([1.0]))
    model = GuidedModel(DeltaPrior(target, s), s, ts, g, GuidanceStep(zeta=0.3))
    out = sample(model, x, ts, s, eta=eta, generator=gen)
    assert (out - target).abs().max() < 1e-3


class ConvPrior(torch.nn.Module):
    """A seeded one-conv eps-model (a real network gradient for guidance), optionally with learned variance."""

    def __init__(self, learned_variance=True):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.learned_variance = learned_variance

    def forward(self, x, t, cond=None):
        eps, v = self.conv(x).chunk(2, dim=1)
        return eps, torch.tanh(v) if self.learned_variance else None


def _chain(model_fn, ts, s, eta, callback=None):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 16, 16, generator=gen)
    return sample(model_fn, x, ts, s, eta=eta, generator=gen, callback=callback)


@pytest.mark.parametrize("eta,learned", [(1.0, True), (1.0, False), (0.0, False), (0.5, False)])
def test_guided_model_with_zeta_0_equals_the_unguided_chain_bit_for_bit(eta, learned):
    s, net, ts = Schedule.linear(), ConvPrior(learned), space_timesteps(1000, 6, start=600)
    target = smooth_image(16).repeat(2, 1, 1, 1)
    g = Guidance(gaussian_blur(target, 1.0)[None], torch.tensor([[1.0, 1.5]]), torch.tensor([1.0]))
    stats = SampleStats()
    plain = _chain(Denoiser(net), ts, s, eta)
    off = GuidedModel(Denoiser(net, stats=stats), s, ts, g, GuidanceStep(zeta=0.0, sigma_lr=0.1), stats=stats)
    assert torch.equal(_chain(off, ts, s, eta), plain)
    assert stats.nfe == len(ts) and stats.seconds["backward"] == 0.0 and torch.equal(off.sigmas, g.sigmas)
    on = GuidedModel(Denoiser(net), s, ts, g, GuidanceStep(zeta=0.3, sigma_lr=0.1), guide_every=2)
    assert not torch.equal(_chain(on, ts, s, eta), plain) and not torch.equal(on.sigmas, g.sigmas)
    assert on.guided_steps == {ts[0], ts[2], ts[4]}


def test_chain_calls_back_once_per_step():
    s, net, ts = Schedule.linear(), ConvPrior(), space_timesteps(1000, 5, start=400)
    seen = []
    out = _chain(Denoiser(net), ts, s, 1.0, callback=seen.append)
    assert [d["i"] for d in seen] == list(range(len(ts))) and [d["t"] for d in seen] == ts
    assert all(set(d) == {"i", "t", "x", "x0"} and d["x"].shape == d["x0"].shape == out.shape for d in seen)
    assert torch.equal(_chain(Denoiser(net), ts, s, 1.0), out)  # the callback changes nothing


def test_kernel_refinement_recovers_sigma(face128):
    """Eq. 7 from a wrong start, with x0 the true image: sigma converges to the truth within 0.1."""
    x0 = face128
    true = 2.0
    y = gaussian_blur(x0, true)[None]
    sig = torch.tensor([[3.2]])
    g = Guidance(y, sig, torch.tensor([1.0]), (0.1, 15.0))
    for _ in range(300):
        s = sig.clone().requires_grad_(True)
        loss = guidance_loss(x0, g, s)
        (gs,) = torch.autograd.grad(loss, [s])
        sig = (sig - 0.01 * gs).clamp(0.1, 15.0)  # |grad| ~ 7.5 here: steps of 0.075
    assert abs(float(sig) - true) < 0.1


def test_sigma_star_identity_restorer_returns_true_sigma(face128):
    """With RM = identity on a pure Gaussian blur y = k_s x, Eq. 19 returns s."""
    grid = sigma_grid(0.1, 5.0, 50)
    for true in (0.5, 1.3, 2.7):
        y = gaussian_blur(face128, true)
        # d(k_s x, k_s y) = ||k_s (x - k_true x)||: below eps once s reaches the blur that hides the
        # difference. Define eps as the distance at the true sigma, so the smallest sigma meeting it is true.
        from dynface.core.sigma_label import blur_distances

        d = blur_distances(face128, y, grid)[0]
        i = int((grid - true).abs().argmin())
        got = sigma_star(face128, y, grid, eps=float(d[i]) + 1e-7)
        assert abs(float(got) - float(grid[i])) < 1e-6
        assert torch.all(d[1:] <= d[:-1] + 1e-6)  # distances fall as sigma grows


def test_dsst_monotone_and_in_range(face128):
    s = Schedule.linear()
    grid = sigma_grid(0.1, 4.0, 40)
    imgs = torch.cat([face128, face128.flip(-1)])
    gap = expected_blur_gap(imgs, grid)
    assert torch.all(gap[1:] >= gap[:-1])
    tau = calibrate_tau(gap, 0.1, 4.0, grid, s, t_hi=925)
    d = DSST.build(imgs, grid, tau, s)
    assert torch.all(d.tstar[1:] >= d.tstar[:-1])
    assert int(d.tstar.min()) >= 0 and int(d.tstar.max()) < 1000
    assert int(d.lookup(4.0)) == 925
    assert int(d.lookup(0.1)) < int(d.lookup(2.0))


def test_start_from_guidance_seeded():
    s = Schedule.linear()
    y = smooth_image(16)
    a = start_from_guidance(y, 700, s, torch.Generator().manual_seed(3))
    b = start_from_guidance(y, 700, s, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
