"""The prior's prediction target: eps (DDPM) or v (Salimans & Ho 2022), and why v keeps colour."""
import numpy as np
import torch

from conftest import smooth_image
from test_training import idm_config
from tiny_models import ARCH, SIZE
from dynface.core.schedule import Schedule, eps_from_v, tweedie_x0, v_target
from dynface.modelset.checkpoint import load_network
from dynface.networks.factory import build_network
from dynface.training.loop import init_from, train
from dynface.training.losses import min_snr_weights

V_ARCH = {**ARCH["prior"], "prediction": "v"}


def test_v_target_and_eps_from_v_invert_each_other():
    s = Schedule.linear()
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1, torch.randn(4, 3, 8, 8, generator=g)
    for t in (0, 250, 600, 999):
        a = s.abar(torch.full((4,), t))
        v = v_target(x0, eps, a)
        x_t = s.q_sample(x0, torch.full((4,), t), eps)
        assert torch.allclose(eps_from_v(x_t, v, a), eps, atol=1e-5)
        assert torch.allclose(tweedie_x0(x_t, eps_from_v(x_t, v, a), a), x0, atol=2e-3), t
    # the ends: v is eps at t = 0 and nearly -x0 at t = T-1
    assert torch.allclose(v_target(x0, eps, s.abar(999)), -x0, atol=0.04)


def test_a_v_model_passes_the_mean_of_x_t_where_an_eps_model_amplifies_the_noise():
    """With its output layer at zero (a network blind to the input), an eps model's x0_hat at
    t = T-1 is x_t / sqrt(abar) (the noise x158), a v model's is sqrt(abar) x_t (bounded); and a
    shift c of one channel of x_t moves the v model's eps by sqrt(1 - abar) c, as the true
    posterior's does at the noisiest steps."""
    torch.manual_seed(0)
    eps_net, v_net = build_network("prior", ARCH["prior"]), build_network("prior", V_ARCH)
    v_net.load_state_dict(eps_net.state_dict())
    s = Schedule.linear()
    x_t, t = torch.randn(2, 3, SIZE, SIZE), torch.tensor([999, 999])
    a = s.abar(t).reshape(-1, 1, 1, 1)
    with torch.no_grad():
        x0_eps = tweedie_x0(x_t, eps_net(x_t, t)[0], a)
        x0_v = tweedie_x0(x_t, v_net(x_t, t)[0], a)
        shift = torch.zeros(1, 3, 1, 1)
        shift[0, 1] = 0.1
        resp = (v_net(x_t + shift, t)[0] - v_net(x_t, t)[0])[:, 1].mean()
    assert torch.allclose(x0_eps, x_t / a.sqrt(), rtol=1e-4) and x0_eps.abs().max() > 100
    assert torch.allclose(x0_v, a.sqrt() * x_t, atol=1e-4) and x0_v.abs().max() < 0.1
    assert abs(float(resp) - 0.1 * float((1 - a[0]).sqrt())) < 1e-4


def test_min_snr_weights_give_v_and_eps_the_same_objective():
    s = Schedule.linear()
    g = torch.Generator().manual_seed(1)
    t = torch.tensor([5, 100, 300, 600, 900])
    x0, eps = torch.rand(5, 3, 8, 8, generator=g) * 2 - 1, torch.randn(5, 3, 8, 8, generator=g)
    a = s.abar(t)
    x_t = s.q_sample(x0, t, eps)
    v_hat = v_target(x0, eps, a) + 0.1 * torch.randn(5, 3, 8, 8, generator=g)
    eps_hat = eps_from_v(x_t, v_hat, a)
    lv = min_snr_weights(s, t, 5.0, "v") * (v_hat - v_target(x0, eps, a)).pow(2).flatten(1).mean(1)
    le = min_snr_weights(s, t, 5.0) * (eps_hat - eps).pow(2).flatten(1).mean(1)
    assert torch.allclose(lv, le, rtol=2e-3), (lv, le)
    w = min_snr_weights(s, t, 5.0, "v")
    snr = (a / (1 - a)).double()
    assert torch.allclose(w.double(), snr.clamp(max=5) / (snr + 1), rtol=1e-6)


def test_a_v_prior_starts_from_an_eps_one_trains_and_loads_as_v(tmp_path):
    torch.manual_seed(0)
    eps_net = build_network("prior", ARCH["prior"])
    from dynface.modelset.checkpoint import export_safetensors

    src = export_safetensors(eps_net, tmp_path / "eps.safetensors", "prior", ARCH["prior"], {"iters": 7},
                             dtype=torch.float32)
    v_net = build_network("prior", V_ARCH)
    assert init_from(v_net, src)["kept"] == 0  # every tensor carries over: only the output's meaning changes
    cfg = idm_config(tmp_path)
    cfg.pop("degradation")
    cfg.update(kind="prior", arch=V_ARCH, iters=3, min_snr_gamma=5, init_from={"path": str(src)})
    train("prior", cfg, run_dir=tmp_path / "run", progress=False)
    loss = [float(r.split(",")[1]) for r in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]]
    assert len(loss) == 3 and np.isfinite(loss).all()
    net = load_network(tmp_path / "run" / "final.safetensors", "prior")
    assert net.prediction == "v"
    x, t = smooth_image(SIZE, seed=2), torch.tensor([400])
    with torch.no_grad():  # what it returns is the eps its v output implies
        assert torch.allclose(net(x, t)[0], eps_from_v(x, net.unet_output(x, t), Schedule.linear().abar(t)), atol=1e-5)
    from dynface.sampling.unconditional import sample_prior

    a = sample_prior(net, SIZE, [0, 1], steps=3, seed=5)
    assert a.shape == (2, 3, SIZE, SIZE) and torch.isfinite(a).all() and a.abs().max() <= 1
    assert torch.allclose(a[1:], sample_prior(net, SIZE, [1], steps=3, seed=5), atol=1e-4)  # face k: its own stream
