"""Isotropic Gaussian kernels k_sigma with sigma as a differentiable, batched tensor.

The blur is the measurement operator A(x) = k_sigma (x) x of DynFaceRestore (docs/method.md §2, §5);
sigma stays differentiable so that the kernel refinement of paper Eq. 7 can take d/d sigma.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def kernel_radius(sigma_max: float, truncate: float = 3.0) -> int:
    """Half-width that holds +-truncate*sigma of the Gaussian (at least 1)."""
    return max(1, int(math.ceil(truncate * float(sigma_max))))


def gaussian_kernel1d(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalised 1-D Gaussian taps, shape (B, 2*radius+1), differentiable in sigma (shape (B,))."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1, 1)
    x = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device).reshape(1, -1)
    w = torch.exp(-0.5 * (x / sigma.clamp_min(1e-3)) ** 2)
    return w / w.sum(dim=1, keepdim=True)


def gaussian_kernel2d(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalised 2-D isotropic kernels, shape (B, 2r+1, 2r+1)."""
    k1 = gaussian_kernel1d(sigma, radius)
    return k1[:, :, None] * k1[:, None, :]


def gaussian_blur(x: torch.Tensor, sigma, truncate: float = 3.0, radius: int | None = None) -> torch.Tensor:
    """Blur images x (B, C, H, W) with per-image sigma (scalar, (B,) or (B*S,) broadcast by repetition).

    Separable convolution with reflect padding. Gradients flow to both x and sigma.
    If sigma has S*B entries for a batch of B images, x is repeated S times (sigma-major),
    which is how the sigma* search blurs one image at many sigmas in one call.
    """
    if x.dim() != 4:
        raise ValueError(f"expected (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
    if sigma.numel() == 1:
        sigma = sigma.expand(b)
    if sigma.numel() != b:
        if sigma.numel() % b:
            raise ValueError(f"{sigma.numel()} sigmas for a batch of {b}")
        x = x.repeat(sigma.numel() // b, 1, 1, 1)
        b = x.shape[0]
    if radius is None:
        radius = kernel_radius(float(sigma.detach().max()), truncate)
    radius = min(radius, h - 1, w - 1)
    k1 = gaussian_kernel1d(sigma, radius).to(x.dtype)  # (B, K)
    kk = k1.repeat_interleave(c, dim=0)  # (B*C, K)
    xx = x.reshape(1, b * c, h, w)
    xx = F.pad(xx, (radius, radius, 0, 0), mode="reflect")
    xx = F.conv2d(xx, kk[:, None, None, :], groups=b * c)
    xx = F.pad(xx, (0, 0, radius, radius), mode="reflect")
    xx = F.conv2d(xx, kk[:, None, :, None], groups=b * c)
    return xx.reshape(b, c, h, w)
