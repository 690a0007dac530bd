"""The sampling chain (paper Algorithm 1), k-diffusion style: a small function of (model, x, timesteps).

One step at kept step t, with t_prev the next kept step (abar_prev = 1 after the last one):

    eps, v[, c] = model(x_t, t)                                                 (c: correction)
    x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)                        (Eq. 3)
    x'     = ancestral DDPM step (learned variance when v is given) or DDIM      (Eq. 6)
    x_prev = x' + c                                                              (Eq. 5, 12 when guided)

The chain knows nothing of guidance, conditions, precision or timing: those are the model's
(`Denoiser` in denoiser.py, `GuidedModel` in guidance.py). `timesteps` is any descending list
of original step indices (respacing), so the same code runs the full chain and few-step
schedules. Noise is drawn on the CPU from `generator` (a list of K generators: K row blocks)
after the model call, only when another step follows and eta > 0, then moved to x's device, so
a seed gives the same chain on every device.
"""
from __future__ import annotations

import torch

from dynface.core.schedule import Schedule, ddim_step, ddpm_step, learned_log_variance, tweedie_x0


def randn(shape, generator=None, dtype=torch.float32) -> torch.Tensor:
    """N(0, I) on the CPU. A list of K generators draws K equal row blocks, block k from generator k
    (K posterior samples in one batch, each with its own reproducible noise stream)."""
    if isinstance(generator, (list, tuple)):
        k = len(generator)
        if shape[0] % k:
            raise ValueError(f"batch of {shape[0]} rows does not split into {k} noise streams")
        return torch.cat([torch.randn((shape[0] // k, *shape[1:]), generator=g, dtype=dtype) for g in generator])
    return torch.randn(shape, generator=generator, dtype=dtype)


@torch.no_grad()
def sample(model, x: torch.Tensor, timesteps: list[int], schedule: Schedule, *, eta: float = 1.0,
           generator: torch.Generator | list | None = None, callback=None) -> torch.Tensor:
    """Run the chain from x at timesteps[0] down to x0_hat.

    model(x_t, t) -> (eps, v) or (eps, v, correction), t a (B,) long tensor; v is None or the
    learned-variance output; correction (or None) is added after the step. eta: 1 = ancestral
    DDPM (Eq. 6), 0 = deterministic DDIM. callback({"i", "t", "x", "x0"}) after every step, with
    x = x_t and x0 = its Tweedie estimate.
    """
    n = len(timesteps)
    for i, t in enumerate(timesteps):
        abar_t = schedule.abar(t)
        abar_prev = schedule.abar(timesteps[i + 1]) if i + 1 < n else torch.tensor(1.0)
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        eps, v, *rest = model(x, tt)
        correction = rest[0] if rest else None
        eps = eps.float()
        x0 = tweedie_x0(x, eps, abar_t)
        noise = randn(x.shape, generator, x.dtype).to(x.device) if i + 1 < n and eta > 0 else None
        if eta == 1.0 or v is not None:
            logvar = learned_log_variance(v.float(), abar_t, abar_prev) if (v is not None and i + 1 < n) else None
            x_next = ddpm_step(x, eps, abar_t, abar_prev, noise, logvar)
        else:
            x_next = ddim_step(x, eps, abar_t, abar_prev, eta, noise)
        if correction is not None:
            x_next = x_next + correction
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0": x0})
        x = x_next
    return x


def start_from_guidance(y_g: torch.Tensor, t_start: torch.Tensor | int, schedule: Schedule,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """x_{t*} = sqrt(abar_{t*}) y_g + sqrt(1 - abar_{t*}) eps (docs/method.md §4)."""
    noise = randn(y_g.shape, generator, y_g.dtype).to(y_g.device)
    return schedule.q_sample(y_g, torch.as_tensor(t_start).reshape(-1).expand(y_g.shape[0]), noise)
