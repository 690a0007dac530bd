"""Posterior guidance (docs/method.md §2, §5-§7): the blur measurement, the guided step on a Tweedie
estimate, and the model wrapper that puts both into the chain (k-diffusion's cond model, DPS's
conditioning object).

    x0_hat = Tweedie(x_t, eps_theta(x_t, t))                                    (Eq. 3)
    L   = sum_i w_i || y_i - k_sigma_i (x) x0_hat(x_t) ||_2                      (Eq. 5, 15)
    (g_x, g_sigma) = grad L  (one backward pass through the network)
    M   = DGSA(y_1, x0_hat, t)  (1 when off)                                    (Eq. 12)
    x_{t-1} = x' - zeta M g_x   (x' the ancestral step of Eq. 6)               (Eq. 5, 12)
    sigma_i <- clamp(sigma_i - eta g_sigma_i)                                   (Eq. 7)

`Guidance` holds the measurement, `GuidanceStep` the step (shared with the DGSA training loss,
training/dgsa_loss.py), `GuidedModel` the per-chain state: which steps are guided and the
refined sigmas.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from dynface.core.kernels import gaussian_blur, kernel_radius
from dynface.core.schedule import Schedule, tweedie_x0
from dynface.sampling.denoiser import SampleStats


@dataclass
class Guidance:
    """Measurements y_i (N, B, C, H, W) = k_sigma_i (x) x0 with weights w_i and sigmas (N, B)."""

    targets: torch.Tensor
    sigmas: torch.Tensor
    weights: torch.Tensor
    sigma_range: tuple[float, float] = (0.1, 15.0)


def guidance_loss(x0: torch.Tensor, g: Guidance, sigmas: torch.Tensor) -> torch.Tensor:
    """sum_i w_i ||y_i - k_sigma_i (x) x0||_2, summed over the batch (per-sample gradients stay independent)."""
    n, b = sigmas.shape
    rad = kernel_radius(float(g.sigma_range[1]))
    blurred = gaussian_blur(x0, sigmas.reshape(-1), radius=rad).reshape(n, b, *x0.shape[1:])
    res = (g.targets - blurred).flatten(2).norm(dim=2)  # (N, B)
    return (g.weights.to(res)[:, None] * res).sum()


@dataclass
class GuidanceStep:
    """The guided step of Eq. 5/12 with guidance scale `zeta` and the kernel refinement of Eq. 7."""

    zeta: float
    sigma_lr: float = 0.0          # eta of Eq. 7; 0 = sigmas stay fixed

    def gradients(self, x0: torch.Tensor, x_t: torch.Tensor, g: Guidance, sigmas: torch.Tensor,
                  refine: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(g_x, g_sigma) of the guidance loss; x0 = Tweedie(x_t) with x_t (and sigmas if refine) requiring grad."""
        grads = torch.autograd.grad(guidance_loss(x0, g, sigmas), [x_t, sigmas] if refine else [x_t])
        return grads[0], grads[1] if refine else None

    def correction(self, g_x: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
        """-zeta (M g_x), what Eq. 5/12 adds to the ancestral step x'."""
        if m is not None:
            g_x = m * g_x
        return -(self.zeta * g_x)

    def apply(self, x_prime: torch.Tensor, g_x: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
        """x_{t-1} = x' - zeta (M g_x) (Eq. 5, 12); x' + (-a) is x' - a bit for bit."""
        return x_prime + self.correction(g_x, m)

    def refine(self, sigmas: torch.Tensor, g_sigma: torch.Tensor, sigma_range: tuple[float, float]) -> torch.Tensor:
        """sigma_i <- clamp(sigma_i - eta g_sigma_i) (Eq. 7)."""
        lo, hi = sigma_range
        return (sigmas - self.sigma_lr * g_sigma.float()).clamp(lo, hi)


class GuidedModel:
    """A model for the chain (chain.sample) that guides: on guided steps it differentiates the
    guidance loss through `model` (eps = model(x_t, t), e.g. a Denoiser), asks DGSA for M, refines
    the sigmas (Eq. 7) and returns the correction -zeta M g_x (Eq. 5, 12) with (eps, v).

    Step i of `timesteps` (the chain's) is guided when i % guide_every == 0 or i >= n - guide_last,
    and only when zeta > 0 (`guided_steps`). `sigmas` holds the refined sigmas (N, B) after the chain.
    """

    def __init__(self, model, schedule: Schedule, timesteps: list[int], guidance: Guidance, step: GuidanceStep,
                 dgsa=None, guide_every: int = 1, guide_last: int = 0, stats: SampleStats | None = None):
        self.model, self.schedule, self.guidance, self.step, self.dgsa = model, schedule, guidance, step, dgsa
        n = len(timesteps)
        self.guided_steps = {t for i, t in enumerate(timesteps)
                       if step.zeta > 0 and (i % max(1, guide_every) == 0 or i >= n - guide_last)}
        self.sigmas = guidance.sigmas.clone().float()
        self.stats = stats if stats is not None else SampleStats()

    def __call__(self, x: torch.Tensor, t: torch.Tensor):
        step_t = int(t[0])
        if step_t not in self.guided_steps:
            return self.model(x, t)
        refine = self.step.sigma_lr > 0
        with torch.enable_grad():
            xin = x.detach().requires_grad_(True)
            sig = self.sigmas.detach().requires_grad_(refine)
            eps, v = self.model(xin, t)
            t0 = time.perf_counter()
            x0 = tweedie_x0(xin, eps.float(), self.schedule.abar(step_t))
            g_x, g_sigma = self.step.gradients(x0, xin, self.guidance, sig, refine)
            self.stats.seconds["backward"] += time.perf_counter() - t0
        m = None
        if self.dgsa is not None:
            t0 = time.perf_counter()
            with torch.no_grad():
                x0 = x0.detach()
                m = self.dgsa(self.guidance.targets[0].to(x0), x0.clamp(-1, 1), t)
            self.stats.seconds["dgsa"] += time.perf_counter() - t0
        if refine:
            self.sigmas = self.step.refine(self.sigmas, g_sigma, self.guidance.sigma_range)
        return eps.detach(), None if v is None else v.detach(), self.step.correction(g_x, m)
