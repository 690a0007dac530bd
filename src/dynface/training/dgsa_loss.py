"""DGSA training loss (docs/method.md §6, paper Eq. 24): one guided step with M_t, then compare the
Tweedie estimate of x_{t-1} with the clean face.

    L = sum_b lambda_b || SWT_b(x0_hat) - SWT_b(x) ||_1 + L_perc(x0_hat, x)

SWT: one-level stationary Haar transform, lambda = (0, 0.01, 0.01, 0.05) for (LL, LH, HL, HH), the
paper's (config `swt_weights:` sets others). Beside 1 - SSIM (~0.1 at 29 dB) these band terms weigh
~0.002, and LL, where a drift of colour or shading shows, weighs nothing.
L_perc: the paper uses DISTS, whose VGG backbone ships nowhere offline. Substitutes (config
`perceptual:`): "ssim" (default), 1 - SSIM (Wang et al. 2004) in [0, 1], a structural term that
rewards fidelity and smoothness; "inception", the deep-feature distance of the FID Inception
network (training/feature_loss.py; not DISTS, not LPIPS), which like DISTS compares deep features
and so also sees texture (the SSIM-trained map lowers detail and raises NIQE).
Stage 1 (first `stage1_iters`) guides with the true k_sigma* x; stage 2 with y_g from DBLM.
The guided step is the sampler's with the run's controls: `n_guidance` images y_i (Eq. 15, spaced by
`guidance_spacing`; 1 = Eq. 24's single y_g), guidance scale `zeta`, and with `chain_fidelity` the
controls the fidelity knob gives them at inference (core/fidelity_control.py: sigma_i scaled, zeta
scaled, N shifted, t* = DSST(sigma_1) following), so a map can be fitted where users run it.

Where the state x_t of the step comes from (config `dgsa_states`):
- forward (the paper's Eq. 24): x_t = q(y_g, t) at a random step t of the respaced chain from t*;
- chain: x_t is the state of a running guided chain. The batch is a pool of chains, each started
  as at inference (x_{t*} = q(y_g, t*)) and advanced one step per iteration by the guided step with
  the map being trained, so M also learns on the states its own earlier steps lead to (off the
  q(y_g) manifold, where a map trained on forward states alone can let the chain drift). A chain
  that reaches x_0 is replaced by a fresh face. The pool lives in `ctx.state` and is checkpointed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dynface.core.dblm import GUIDANCE_WEIGHTS, guidance_images, guidance_sigmas
from dynface.core.fidelity_control import fidelity_controls
from dynface.core.imagemetrics import ssim
from dynface.core.schedule import ddpm_step, tweedie_x0, space_timesteps
from dynface.core.sigma_label import sigma_grid, sigma_star
from dynface.sampling.guidance import Guidance, GuidanceStep
from dynface.training.config import PERCEPTUAL, SWT_WEIGHTS


def swt_haar(x: torch.Tensor) -> torch.Tensor:
    """One-level stationary (undecimated) Haar transform: (B, C, H, W) -> (B, 4, C, H, W) as LL, LH, HL, HH."""
    f = torch.tensor([[[1, 1], [1, 1]], [[1, 1], [-1, -1]], [[1, -1], [1, -1]], [[1, -1], [-1, 1]]],
                     dtype=x.dtype, device=x.device) / 2
    b, c, h, w = x.shape
    xp = F.pad(x.reshape(b * c, 1, h, w), (0, 1, 0, 1), mode="replicate")
    out = F.conv2d(xp, f[:, None])
    return out.reshape(b, c, 4, h, w).transpose(1, 2)




def dgsa_objective(x0_hat: torch.Tensor, x: torch.Tensor, perceptual: str = PERCEPTUAL[0],
                   swt_weights=SWT_WEIGHTS) -> torch.Tensor:
    """Computed in float32 even under autocast (SSIM's variance terms underflow in bf16)."""
    if perceptual not in PERCEPTUAL:
        raise ValueError(f"dgsa `perceptual: {perceptual}`: choose from {', '.join(PERCEPTUAL)}")
    with torch.autocast(x.device.type, enabled=False):
        return _objective(x0_hat.float(), x.float(), perceptual, swt_weights)


def _objective(x0_hat: torch.Tensor, x: torch.Tensor, perceptual: str, swt_weights) -> torch.Tensor:
    d = (swt_haar(x0_hat) - swt_haar(x)).abs().mean(dim=(0, 2, 3, 4))
    swt = (torch.tensor(swt_weights, dtype=d.dtype, device=d.device) * d).sum()
    if perceptual == "inception":
        from dynface.training.feature_loss import inception_feature_loss

        return swt + inception_feature_loss(x0_hat.clamp(-1, 1), x)
    return swt + (1 - ssim((x0_hat.clamp(-1, 1) + 1) / 2, (x + 1) / 2))


def _score(x0_prev: torch.Tensor, x: torch.Tensor, cfg) -> torch.Tensor:
    """Eq. 24 with the run's perceptual term and band weights (`swt_weights`)."""
    return dgsa_objective(x0_prev, x, cfg.perceptual, cfg.swt_weights)


def dgsa_loss(model, ctx) -> torch.Tensor:
    """The loss of one batch: one guided step (Eq. 12) from each state, scored by Eq. 24."""
    if ctx.cfg.dgsa_states == "chain":
        return _chain_loss(model, ctx)
    return _forward_loss(model, ctx)


def chain_controls(cfg) -> tuple[int, float, float]:
    """(N, sigma scale, zeta) of the run's guided steps: its n_guidance and zeta under the controls
    of `chain_fidelity` (None: the method's own setting, which changes nothing)."""
    fc = fidelity_controls(cfg.chain_fidelity)
    return fc.n_guidance(cfg.n_guidance), fc.sigma_scale, float(cfg.zeta) * fc.zeta_scale


def _guidance_images(x: torch.Tensor, ctx):
    """(x, y_g, sigma, t*) of clean faces x (CPU): degraded with the step's seeds, restored by the
    frozen RM, the guidance images y_g (B, N, C, H, W) at sigmas (B, N) (stage 1: k_sigma_i x from
    sigma*; stage 2: DBLM, k_sigma_i RM(y) from sigma_hat; Eq. 15) and DSST's start step for sigma_1.
    x is returned on the networks' device, the rest too."""
    from dynface.training.batches import degrade_batch

    cfg, fz = ctx.cfg, ctx.frozen
    smin, smax, n = cfg.sigma_grid
    n_g, scale, _ = chain_controls(cfg)
    with torch.no_grad(), torch.autocast(ctx.device.type, enabled=False):
        y = degrade_batch(x, cfg, ctx.step)
        x, y = ctx.on_device(x, y)
        r = fz["rm"](y).clamp(-1, 1).float()
        if ctx.step < cfg.stage1_iters:
            sharp, sig = x, sigma_star(x, r, sigma_grid(smin, smax, int(n)), cfg.eps)
        else:
            sharp, sig = r, fz["sde"](fz["tm"](y)).float().clamp(smin, smax)
        sig = guidance_sigmas(sig, n_g, cfg.guidance_spacing, smin, scale, smax)  # (N, B)
        y_g = guidance_images(sharp, sig)
    return x, y_g.transpose(0, 1), sig.T, fz["dsst"].lookup(sig[0])


def _chain_steps(ctx, t_star: int) -> list[int]:
    """The kept steps of the respaced chain from t* (what the sampler runs at inference)."""
    return space_timesteps(ctx.schedule.num_steps, ctx.cfg.sampler_steps, start=int(t_star))


def _step_pair(steps: list[int], j: int) -> tuple[int, int]:
    """(t, t_prev) of step j of a chain's kept steps; t_prev = -1 after its last step."""
    return steps[j], steps[j + 1] if j + 1 < len(steps) else -1


def _forward_loss(model, ctx) -> torch.Tensor:
    """Eq. 24's states: x_t = q(y_g, t) at a random step t of each face's chain."""
    sched = ctx.schedule
    x, y_g, sig, t_star = _guidance_images(ctx.batcher(ctx.cfg.batch), ctx)
    b = x.shape[0]
    pairs = []
    for i in range(b):  # a random step of the default respaced chain starting at t*
        steps = _chain_steps(ctx, t_star[i])
        pairs.append(_step_pair(steps, ctx.batcher.randint(0, len(steps))))
    t, t_prev = zip(*pairs)
    with torch.no_grad():
        noise = torch.randn(y_g[:, 0].shape, dtype=y_g.dtype)  # CPU draws (Ctx): the same on every device
        t, t_prev, noise = ctx.on_device(torch.tensor(t), torch.tensor(t_prev), noise)
        x_t = sched.q_sample(y_g[:, 0], t, noise)
    x0_prev, _ = guided_step(model, ctx, x_t, t, t_prev, y_g, sig)
    return _score(x0_prev, x, ctx.cfg)


CHAIN_KEYS = ("x", "y_g", "sig", "t_star", "j", "x_t")  # the pool of running chains in ctx.state


def _chain_loss(model, ctx) -> torch.Tensor:
    """States of running chains: refill the chains that reached x_0, take one guided step of each
    with the map being trained, score it, and keep x_{t-1} (detached) as the chain's next state."""
    st = _refill_chains(ctx)
    x, y_g, sig, x_t = ctx.on_device(st["x"], st["y_g"], st["sig"], st["x_t"])
    t, t_prev = zip(*(_step_pair(_chain_steps(ctx, ts), j) for ts, j in zip(st["t_star"].tolist(), st["j"].tolist())))
    t, t_prev = ctx.on_device(torch.tensor(t), torch.tensor(t_prev))
    x0_prev, x_prev = guided_step(model, ctx, x_t, t, t_prev, y_g, sig)
    st["x_t"] = x_prev.detach().float().cpu()
    st["j"] = st["j"] + 1
    return _score(x0_prev, x, ctx.cfg)


def _refill_chains(ctx) -> dict:
    """ctx.state's pool of `batch` chains, every finished (or missing) one replaced by a new face
    started at its DSST step: x_{t*} = q(y_g, t*) (sampling/chain.start_from_guidance)."""
    st, b = ctx.state, ctx.cfg.batch
    if st.get("y_g") is not None and st["y_g"].dim() == 4:  # a pool saved with one guidance image per chain
        st["y_g"], st["sig"] = st["y_g"][:, None], st["sig"][:, None]
    if (not all(k in st for k in CHAIN_KEYS) or st["x"].shape[0] != b
            or st["y_g"].shape[1] != chain_controls(ctx.cfg)[0]):
        st.clear()
        done = list(range(b))
    else:
        done = [i for i, (ts, j) in enumerate(zip(st["t_star"].tolist(), st["j"].tolist()))
                if j >= len(_chain_steps(ctx, ts))]
    if not done:
        return st
    x, y_g, sig, t_star = _guidance_images(ctx.batcher(len(done)), ctx)
    with torch.no_grad():
        noise = torch.randn(y_g[:, 0].shape, dtype=y_g.dtype)
        x_t = ctx.schedule.q_sample(y_g[:, 0], t_star.to(y_g.device), *ctx.on_device(noise))
    new = {"x": x, "y_g": y_g, "sig": sig, "t_star": t_star, "j": torch.zeros(len(done), dtype=torch.long),
           "x_t": x_t}
    new = {k: v.detach().float().cpu() if v.is_floating_point() else v.detach().long().cpu() for k, v in new.items()}
    if not st:
        st.update(new)
        return st
    idx = torch.tensor(done)
    for k in CHAIN_KEYS:
        st[k] = st[k].clone()
        st[k][idx] = new[k]
    return st


def guided_step(model, ctx, x_t, t, t_prev, y_g, sig) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampler's guided step from x_t at t to t_prev (-1: the chain's last step) with the map
    `model` (Eq. 5, 6, 12, 15; y_g (B, N, C, H, W), sig (B, N)), and the Tweedie estimate at t_prev
    that Eq. 24 scores: (x0_prev, x_prev)."""
    cfg, sched, prior = ctx.cfg, ctx.schedule, ctx.frozen["prior"]
    smin, smax, _ = cfg.sigma_grid
    n_g, _, zeta = chain_controls(cfg)
    b = x_t.shape[0]
    abar_t = sched.abar(t)
    abar_p = torch.where(t_prev >= 0, sched.abar(t_prev.clamp_min(0)), torch.ones(b, device=abar_t.device))
    # guidance gradient through the frozen prior (Eq. 5)
    with torch.enable_grad():
        xin = x_t.detach().requires_grad_(True)
        eps, _ = prior(xin, t)
        x0 = tweedie_x0(xin, eps.float(), abar_t)
        step = GuidanceStep(zeta)
        g = Guidance(y_g.transpose(0, 1), sig.T, torch.tensor(GUIDANCE_WEIGHTS[n_g]), (smin, smax))
        g_x, _ = step.gradients(x0, xin, g, sig.T)
    (noise,) = ctx.on_device(torch.randn(x_t.shape, dtype=x_t.dtype))
    x_prime = ddpm_step(x_t, eps.detach().float(), abar_t, abar_p, noise)
    m = model(y_g[:, 0], x0.detach().clamp(-1, 1), t)
    x_prev = step.apply(x_prime, g_x, m)  # Eq. 12: the sampler's guided step
    eps2, _ = prior(x_prev, t_prev.clamp_min(0))
    x0_prev = torch.where((t_prev >= 0).reshape(-1, 1, 1, 1), tweedie_x0(x_prev, eps2.float(), abar_p), x_prev)
    return x0_prev, x_prev
