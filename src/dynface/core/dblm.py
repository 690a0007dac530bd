"""Dynamic Blur-Level Mapping (paper Eq. 8 / 17, docs/method.md §3 and §7).

The restorer's output is re-blurred to the level sigma_hat at which it can be trusted:
y_g = k_sigma_hat (x) RM(y). sigma_hat = SDE(TM(y)) (supplement B.1: the guidance is built from
RM, the level from TM). Multiple guidance (Eq. 15) uses sigma_1 = sigma_hat > sigma_2 > ... with a
configurable spacing.
"""
from __future__ import annotations

import torch

from dynface.core.kernels import gaussian_blur

# Eq. 15 weights for N = 1..4 guidances (supplement B.3)
GUIDANCE_WEIGHTS = {1: (1.0,), 2: (0.8, 0.2), 3: (0.7, 0.2, 0.1), 4: (0.7, 0.1, 0.1, 0.1)}


def guidance_sigmas(sigma_hat: torch.Tensor, n: int, spacing: float, sigma_min: float,
                    scale: float = 1.0, sigma_max: float = float("inf")) -> torch.Tensor:
    """(N, B) sigmas: sigma_hat, sigma_hat - spacing, ... clamped to >= sigma_min; a `scale` other
    than 1 (the fidelity knob's trust level, core/fidelity_control.py) then multiplies them, clamped
    to [sigma_min, sigma_max]."""
    if n not in GUIDANCE_WEIGHTS:
        raise ValueError(f"number of guidances must be 1..4, got {n}")
    steps = torch.arange(n, dtype=sigma_hat.dtype)[:, None] * spacing
    sig = (sigma_hat[None, :] - steps).clamp_min(sigma_min)
    return sig if scale == 1.0 else (sig * scale).clamp(sigma_min, sigma_max)


def guidance_images(restored: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Eq. 8/17 for each guidance: y_i = k_sigma_i (x) RM(y); returns (N, B, C, H, W)."""
    n, b = sigmas.shape
    out = gaussian_blur(restored.float(), sigmas.reshape(-1))  # sigma-major repeat of the batch
    return out.reshape(n, b, *restored.shape[1:])


@torch.no_grad()
def estimate_sigma(tm, sde, y: torch.Tensor) -> torch.Tensor:
    """sigma_hat = SDE(TM(y)) (Eq. 10 at inference)."""
    return sde(tm(y)).float()
