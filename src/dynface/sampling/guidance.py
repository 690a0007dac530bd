"""Posterior guidance (METHOD §2, §5-§7): the blur measurement and the guided step on a Tweedie estimate.

    L   = sum_i w_i || y_i - k_sigma_i (x) x0_hat(x_t) ||_2                      (Eq. 5, 15)
    (g_x, g_sigma) = grad L  (one backward pass through the network)
    x_{t-1} = x' - zeta M g_x   (M = DGSA map, 1 when off)                    (Eq. 5, 12)
    sigma_i <- clamp(sigma_i - eta g_sigma_i)                                   (Eq. 7)

`Guidance` holds the measurement, `GuidanceStep` the step; the sampler (guided.py) and the DGSA
training loss (training/dgsa_loss.py) both use them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dynface.core.kernels import gaussian_blur, kernel_radius


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

    def apply(self, x_prime: torch.Tensor, g_x: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
        """x_{t-1} = x' - zeta (M g_x) (Eq. 5, 12)."""
        if m is not None:
            g_x = m * g_x
        return x_prime - self.zeta * g_x

    def refine(self, sigmas: torch.Tensor, g_sigma: torch.Tensor, sigma_range: tuple[float, float]) -> torch.Tensor:
        """sigma_i <- clamp(sigma_i - eta g_sigma_i) (Eq. 7)."""
        lo, hi = sigma_range
        return (sigmas - self.sigma_lr * g_sigma.float()).clamp(lo, hi)
