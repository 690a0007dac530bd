"""DGSA training loss (docs/method.md §6, paper Eq. 24): one guided step with M_t, then compare the
Tweedie estimate of x_{t-1} with the clean face.

    L = sum_b lambda_b || SWT_b(x0_hat) - SWT_b(x) ||_1 + L_perc(x0_hat, x)

SWT: one-level stationary Haar transform, lambda = (0, 0.01, 0.01, 0.05) for (LL, LH, HL, HH).
L_perc: the paper uses DISTS, whose VGG backbone ships nowhere offline. Substitutes (config
`perceptual:`): "ssim" (default), 1 - SSIM (Wang et al. 2004) in [0, 1], a structural term that
rewards fidelity and smoothness; "inception", the deep-feature distance of the FID Inception
network (training/feature_loss.py; not DISTS, not LPIPS), which like DISTS compares deep features
and so also sees texture (the SSIM-trained map lowers detail and raises NIQE).
Stage 1 (first `stage1_iters`) guides with the true k_sigma* x; stage 2 with y_g from DBLM.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dynface.core.imagemetrics import ssim
from dynface.core.kernels import gaussian_blur
from dynface.core.schedule import ddpm_step, tweedie_x0, space_timesteps
from dynface.core.sigma_label import sigma_grid, sigma_star
from dynface.sampling.guidance import Guidance, GuidanceStep
from dynface.training.config import PERCEPTUAL

SWT_WEIGHTS = (0.0, 0.01, 0.01, 0.05)


def swt_haar(x: torch.Tensor) -> torch.Tensor:
    """One-level stationary (undecimated) Haar transform: (B, C, H, W) -> (B, 4, C, H, W) as LL, LH, HL, HH."""
    f = torch.tensor([[[1, 1], [1, 1]], [[1, 1], [-1, -1]], [[1, -1], [1, -1]], [[1, -1], [-1, 1]]],
                     dtype=x.dtype, device=x.device) / 2
    b, c, h, w = x.shape
    xp = F.pad(x.reshape(b * c, 1, h, w), (0, 1, 0, 1), mode="replicate")
    out = F.conv2d(xp, f[:, None])
    return out.reshape(b, c, 4, h, w).transpose(1, 2)




def dgsa_objective(x0_hat: torch.Tensor, x: torch.Tensor, perceptual: str = PERCEPTUAL[0]) -> torch.Tensor:
    """Computed in float32 even under autocast (SSIM's variance terms underflow in bf16)."""
    if perceptual not in PERCEPTUAL:
        raise ValueError(f"dgsa `perceptual: {perceptual}`: choose from {', '.join(PERCEPTUAL)}")
    with torch.autocast(x.device.type, enabled=False):
        return _objective(x0_hat.float(), x.float(), perceptual)


def _objective(x0_hat: torch.Tensor, x: torch.Tensor, perceptual: str) -> torch.Tensor:
    d = (swt_haar(x0_hat) - swt_haar(x)).abs().mean(dim=(0, 2, 3, 4))
    swt = (torch.tensor(SWT_WEIGHTS, dtype=d.dtype, device=d.device) * d).sum()
    if perceptual == "inception":
        from dynface.training.feature_loss import inception_feature_loss

        return swt + inception_feature_loss(x0_hat.clamp(-1, 1), x)
    return swt + (1 - ssim((x0_hat.clamp(-1, 1) + 1) / 2, (x + 1) / 2))


def dgsa_loss(model, ctx) -> torch.Tensor:
    from dynface.training.batches import degrade_batch

    cfg, fz, sched = ctx.cfg, ctx.frozen, ctx.schedule
    prior, rm, dsst = fz["prior"], fz["rm"], fz["dsst"]
    smin, smax, n = cfg.sigma_grid
    x = ctx.batcher(cfg.batch)
    b = x.shape[0]
    with torch.no_grad(), torch.autocast(ctx.device.type, enabled=False):
        y = degrade_batch(x, cfg, ctx.step)
        x, y = ctx.on_device(x, y)
        r = rm(y).clamp(-1, 1).float()
        if ctx.step < cfg.stage1_iters:
            sig = sigma_star(x, r, sigma_grid(smin, smax, int(n)), cfg.eps)
            y_g = gaussian_blur(x, sig)
        else:
            sig = fz["sde"](fz["tm"](y)).float().clamp(smin, smax)
            y_g = gaussian_blur(r, sig)
        t_star = dsst.lookup(sig)
        t, t_prev = [], []
        for i in range(b):  # a random step of the default respaced chain starting at t*
            steps = space_timesteps(sched.num_steps, cfg.sampler_steps, start=int(t_star[i]))
            j = ctx.batcher.randint(0, len(steps))
            t.append(steps[j])
            t_prev.append(steps[j + 1] if j + 1 < len(steps) else -1)
        t, t_prev = torch.tensor(t), torch.tensor(t_prev)
        abar_t = sched.abar(t)
        abar_p = torch.where(t_prev >= 0, sched.abar(t_prev.clamp_min(0)), torch.ones(b))
        noise = torch.randn(y_g.shape, dtype=y_g.dtype)  # CPU draws (Ctx): the same on every device
        t, t_prev, abar_t, abar_p, noise = ctx.on_device(t, t_prev, abar_t, abar_p, noise)
        x_t = sched.q_sample(y_g, t, noise)
    # guidance gradient through the frozen prior (Eq. 5)
    with torch.enable_grad():
        xin = x_t.detach().requires_grad_(True)
        eps, _ = prior(xin, t)
        x0 = tweedie_x0(xin, eps.float(), abar_t)
        step = GuidanceStep(float(cfg.zeta))
        g_x, _ = step.gradients(x0, xin, Guidance(y_g[None], sig[None], torch.tensor([1.0]), (smin, smax)), sig[None])
    (noise,) = ctx.on_device(torch.randn(x_t.shape, dtype=x_t.dtype))
    x_prime = ddpm_step(x_t, eps.detach().float(), abar_t, abar_p, noise)
    m = model(y_g, x0.detach().clamp(-1, 1), t)
    x_prev = step.apply(x_prime, g_x, m)  # Eq. 12: the sampler's guided step
    eps2, _ = prior(x_prev, t_prev.clamp_min(0))
    x0_prev = torch.where((t_prev >= 0).reshape(-1, 1, 1, 1), tweedie_x0(x_prev, eps2.float(), abar_p), x_prev)
    return dgsa_objective(x0_prev.float(), x, cfg.perceptual)
