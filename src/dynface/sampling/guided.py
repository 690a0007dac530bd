"""Guided posterior sampling of DynFaceRestore (METHOD §2, §5-§8; paper Algorithm 1).

Written k-diffusion style: small functions of (model, x, timesteps). One step at step t:

    eps = eps_theta(x_t, t);  x0_hat = Tweedie(x_t, eps)                        (Eq. 3)
    x'  = ancestral / DDIM step(x_t, eps) to the next kept step                (Eq. 6)
    L   = sum_i w_i || y_i - k_sigma_i (x) x0_hat ||_2                          (Eq. 5, 15)
    (g_x, g_sigma) = grad L  (one backward pass)
    M   = DGSA(y_1, x0_hat, t)  (1 when off)                                    (Eq. 12)
    x_{t-1} = x' - zeta M g_x;  sigma_i <- clamp(sigma_i - eta g_sigma_i)        (Eq. 5, 7)

`timesteps` is any descending list of original step indices (respacing), so the same code runs
the full DSST-length chain and few-step schedules; after the last kept step the chain ends at
x0_hat (abar_prev = 1). The guidance itself (measurement, gradient, step, refinement) is guidance.py.

Devices: the chain runs on x's device; noise is drawn on the CPU from `generator` and moved, so
a seed gives the same chain (up to kernel rounding) on every device. Precision: autocast of the
network call with the resolved `cfg.precision` ("fp32" | "fp16" | "bf16", see core/hardware.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from dynface.core.hardware import autocast
from dynface.core.schedule import Schedule, ddim_step, ddpm_step, learned_log_variance, tweedie_x0
from dynface.sampling.guidance import Guidance, GuidanceStep


@dataclass
class SamplerConfig:
    zeta: float = 0.3            # guidance scale (DPS, un-squared norm; METHOD §2)
    sigma_lr: float = 0.0        # eta of Eq. 7; 0 disables kernel refinement
    eta: float = 1.0             # 1: ancestral DDPM step (Eq. 6); 0: deterministic DDIM
    guide_every: int = 1         # guidance on every k-th kept step (1 = all)
    guide_last: int = 0          # always guide the last k steps
    precision: str = "fp32"      # resolved autocast precision: fp32 | fp16 | bf16 (hardware.resolve_precision)


@dataclass
class SampleStats:
    """Per-stage seconds and network evaluations, filled during sampling."""

    seconds: dict = field(default_factory=lambda: {"unet_forward": 0.0, "backward": 0.0, "dgsa": 0.0, "other": 0.0})
    nfe: int = 0
    sigma_trace: list = field(default_factory=list)


def randn(shape, generator=None, dtype=torch.float32) -> torch.Tensor:
    """N(0, I) on the CPU. A list of K generators draws K equal row blocks, block k from generator k
    (K posterior samples in one batch, each with its own reproducible noise stream)."""
    if isinstance(generator, (list, tuple)):
        k = len(generator)
        if shape[0] % k:
            raise ValueError(f"batch of {shape[0]} rows does not split into {k} noise streams")
        return torch.cat([torch.randn((shape[0] // k, *shape[1:]), generator=g, dtype=dtype) for g in generator])
    return torch.randn(shape, generator=generator, dtype=dtype)


def is_guided(i: int, n: int, cfg: SamplerConfig) -> bool:
    return i % max(1, cfg.guide_every) == 0 or i >= n - cfg.guide_last


def sample_guided(model, x: torch.Tensor, timesteps: list[int], schedule: Schedule, guidance: Guidance | None,
                  cfg: SamplerConfig, dgsa=None, generator: torch.Generator | list | None = None,
                  stats: SampleStats | None = None, progress=None, cond: torch.Tensor | None = None):
    """Run the chain from x at timesteps[0] down to x0. Returns (x0, refined sigmas or None)."""
    stats = stats or SampleStats()
    sigmas = guidance.sigmas.clone().float() if guidance is not None else None
    step = GuidanceStep(cfg.zeta, cfg.sigma_lr)
    amp = autocast(x.device.type, cfg.precision)
    n = len(timesteps)
    for i, t in enumerate(timesteps):
        t0 = time.perf_counter()
        abar_t = schedule.abar(t)
        abar_prev = schedule.abar(timesteps[i + 1]) if i + 1 < n else torch.tensor(1.0)
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        guided = guidance is not None and cfg.zeta > 0 and is_guided(i, n, cfg)
        refine = guided and cfg.sigma_lr > 0
        with torch.enable_grad() if guided else torch.no_grad():
            xin = x.detach().requires_grad_(guided)
            sig = sigmas.detach().requires_grad_(refine) if sigmas is not None else None
            with amp:
                eps, v = model(xin, tt, cond=cond) if cond is not None else model(xin, tt)
            eps = eps.float()
            t1 = time.perf_counter()
            stats.seconds["unet_forward"] += t1 - t0
            stats.nfe += 1
            x0 = tweedie_x0(xin, eps, abar_t)
            if guided:
                g_x, g_sigma = step.gradients(x0, xin, guidance, sig, refine)
                t2 = time.perf_counter()
                stats.seconds["backward"] += t2 - t1
                t1 = t2
        x0 = x0.detach()
        noise = None
        if i + 1 < n and cfg.eta > 0:
            noise = randn(x.shape, generator, x.dtype).to(x.device)
        if cfg.eta == 1.0 or v is not None:
            logvar = learned_log_variance(v.float(), abar_t, abar_prev) if (v is not None and i + 1 < n) else None
            x_next = ddpm_step(xin.detach(), eps.detach(), abar_t, abar_prev, noise, logvar)
        else:
            x_next = ddim_step(xin.detach(), eps.detach(), abar_t, abar_prev, cfg.eta, noise)
        t_dgsa = 0.0
        if guided:
            if dgsa is not None:
                t3 = time.perf_counter()
                with torch.no_grad():
                    m = dgsa(guidance.targets[0].to(x0), x0.clamp(-1, 1), tt)
                t_dgsa = time.perf_counter() - t3
                stats.seconds["dgsa"] += t_dgsa
            else:
                m = None
            x_next = step.apply(x_next, g_x, m)
            if refine:
                sigmas = step.refine(sigmas, g_sigma, guidance.sigma_range)
        x = x_next.detach()
        if sigmas is not None:
            stats.sigma_trace.append(sigmas[0].clone())
        stats.seconds["other"] += time.perf_counter() - t1 - t_dgsa  # the stages above do not overlap
        if progress is not None:
            progress.update(1)
    return x, sigmas


def start_from_guidance(y_g: torch.Tensor, t_start: torch.Tensor | int, schedule: Schedule,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """x_{t*} = sqrt(abar_{t*}) y_g + sqrt(1 - abar_{t*}) eps (METHOD §4)."""
    noise = randn(y_g.shape, generator, y_g.dtype).to(y_g.device)
    return schedule.q_sample(y_g, torch.as_tensor(t_start).reshape(-1).expand(y_g.shape[0]), noise)
