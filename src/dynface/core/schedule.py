"""DDPM noise schedule and the per-step maths, kept apart from networks and samplers.

T = 1000 steps, beta linear from 1e-4 to 2e-2 (`docs/method.md` notation). Respacing follows
improved-diffusion: a subset of timesteps keeps alpha_bar at those steps, and the network is
called with the original timestep index.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2) -> torch.Tensor:
    """Linear beta schedule (DDPM), float64."""
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


@dataclass
class Schedule:
    """alpha_bar for every original step t = 0..T-1 (t=0 is the least noisy)."""

    alphas_cumprod: torch.Tensor  # (T,), float64

    @classmethod
    def linear(cls, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2) -> "Schedule":
        betas = linear_betas(num_steps, beta_start, beta_end)
        return cls(torch.cumprod(1.0 - betas, dim=0))

    @property
    def num_steps(self) -> int:
        return int(self.alphas_cumprod.numel())

    def abar(self, t) -> torch.Tensor:
        """alpha_bar_t as float32, for integer t (tensor or int), on t's device."""
        t = torch.as_tensor(t, dtype=torch.long)
        return self.alphas_cumprod[t.cpu()].float().to(t.device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward diffusion x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
        a = self.abar(t).to(x0.device).reshape(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise


def space_timesteps(num_steps: int, count: int, start: int | None = None) -> list[int]:
    """Evenly spaced original timesteps, descending, from `start` (default T-1) down to 0.

    `count` is the number of network evaluations. count >= start+1 gives the full chain.
    """
    start = num_steps - 1 if start is None else int(start)
    if not 0 <= start < num_steps:
        raise ValueError(f"start step {start} outside [0, {num_steps})")
    count = max(1, min(int(count), start + 1))
    if count == 1:
        return [start]
    steps = torch.linspace(start, 0, count).round().long().tolist()
    out: list[int] = []
    for s in steps:  # rounding can repeat a step on short chains
        if not out or s < out[-1]:
            out.append(int(s))
    return out


def tweedie_x0(x_t: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """Paper Eq. 3: x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    abar_t = _bcast(abar_t, x_t)
    return (x_t - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """Inverse of Tweedie: the noise that maps x0 to x_t."""
    abar_t = _bcast(abar_t, x_t)
    return (x_t - abar_t.sqrt() * x0) / (1 - abar_t).sqrt()


def v_target(x0: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Salimans & Ho 2022, §4): the velocity target."""
    abar_t = _bcast(abar_t, x0)
    return abar_t.sqrt() * eps - (1 - abar_t).sqrt() * x0


def eps_from_v(x_t: torch.Tensor, v: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t, the noise a v prediction implies; with it
    tweedie_x0 gives x0_hat = sqrt(abar_t) x_t - sqrt(1 - abar_t) v."""
    abar_t = _bcast(abar_t, x_t)
    return abar_t.sqrt() * v + (1 - abar_t).sqrt() * x_t


def ddpm_step(x_t, eps, abar_t, abar_prev, noise=None, log_variance=None):
    """Paper Eq. 6, ancestral DDPM step between two (possibly respaced) steps.

    beta = 1 - abar_t/abar_prev, alpha = 1 - beta;
    x_prev = (x_t - beta/sqrt(1-abar_t) eps)/sqrt(alpha) + sigma z, sigma^2 = posterior variance
    beta (1-abar_prev)/(1-abar_t), or exp(log_variance) when the model learns it.
    """
    abar_t, abar_prev = _bcast(abar_t, x_t), _bcast(abar_prev, x_t)
    alpha = abar_t / abar_prev
    beta = 1 - alpha
    mean = (x_t - beta / (1 - abar_t).sqrt() * eps) / alpha.sqrt()
    if noise is None:
        return mean
    if log_variance is None:
        var = beta * (1 - abar_prev) / (1 - abar_t)
    else:
        var = log_variance.exp()
    return mean + var.sqrt() * noise


def ddim_step(x_t, eps, abar_t, abar_prev, eta: float = 0.0, noise=None):
    """DDIM update (Song et al. 2021, Eq. 12) between two steps; eta=1 equals ddpm_step."""
    abar_t, abar_prev = _bcast(abar_t, x_t), _bcast(abar_prev, x_t)
    x0 = tweedie_x0(x_t, eps, abar_t)
    sigma = eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).clamp_min(0).sqrt()
    dir_xt = (1 - abar_prev - sigma**2).clamp_min(0).sqrt() * eps
    out = abar_prev.sqrt() * x0 + dir_xt
    if noise is not None and eta > 0:
        out = out + sigma * noise
    return out


def learned_log_variance(v: torch.Tensor, abar_t, abar_prev) -> torch.Tensor:
    """improved-diffusion's learned range: interpolate log(beta) and log(posterior var) by (v+1)/2."""
    abar_t, abar_prev = _bcast(abar_t, v), _bcast(abar_prev, v)
    beta = 1 - abar_t / abar_prev
    post = beta * (1 - abar_prev) / (1 - abar_t)
    min_log = post.clamp_min(1e-20).log()
    max_log = beta.clamp_min(1e-20).log()
    frac = (v + 1) / 2
    return frac * max_log + (1 - frac) * min_log


def _bcast(a, like: torch.Tensor) -> torch.Tensor:
    a = torch.as_tensor(a, dtype=like.dtype, device=like.device)
    if a.dim() == 0:
        return a
    return a.reshape(-1, *([1] * (like.dim() - 1)))
