"""Image-quality measures on tensors (differentiable where a loss uses them): PSNR, SSIM and the
detail ratio, for training losses, learning curves and benchmarks. The numpy versions that follow
the evaluation conventions of the literature (uint8, valid region) are in metrics/fidelity.py."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ssim(a: torch.Tensor, b: torch.Tensor, win: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of images in [0, 1] (Gaussian window), differentiable."""
    c1, c2 = 0.01**2, 0.03**2
    k1 = torch.exp(-0.5 * ((torch.arange(win, dtype=a.dtype, device=a.device) - win // 2) / sigma) ** 2)
    k1 = k1 / k1.sum()
    c = a.shape[1]
    kh, kv = k1.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), k1.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def filt(z):
        return F.conv2d(F.conv2d(z, kh, groups=c), kv, groups=c)

    mu_a, mu_b = filt(a), filt(b)
    saa, sbb, sab = filt(a * a) - mu_a**2, filt(b * b) - mu_b**2, filt(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.mean()


LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean PSNR (dB) over the batch of images in [-1, 1]."""
    mse = ((a.float().clamp(-1, 1) - b.float()) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


def detail_energy(x: torch.Tensor) -> torch.Tensor:
    """Per-image mean |Laplacian| of the grey image in [0, 1]: how much fine detail an image has."""
    g = (x.float().clamp(-1, 1) + 1) / 2
    grey = (0.299 * g[:, 0] + 0.587 * g[:, 1] + 0.114 * g[:, 2])[:, None]
    return F.conv2d(grey, LAPLACIAN.reshape(1, 1, 3, 3).to(grey)).abs().flatten(1).mean(1)


def detail_ratio(out: torch.Tensor, gt: torch.Tensor) -> float:
    """Mean over images of detail_energy(out) / detail_energy(gt)."""
    return float((detail_energy(out) / detail_energy(gt).clamp_min(1e-8)).mean())


def ssim_pm1(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of images in [-1, 1] (a clamped), as a number."""
    return float(ssim((a.float().clamp(-1, 1) + 1) / 2, (b.float() + 1) / 2))
