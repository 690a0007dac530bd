"""The sigma* label of DBLM (paper Eq. 9 / 19), vectorised over the sigma grid.

sigma* = the smallest sigma on the grid with d(k_sigma (x) x, k_sigma (x) RM(y)) <= eps, where d is
the mean absolute error on [0, 1] images (docs/method.md §3 open choice; default here). If no sigma meets
eps, the largest grid value is returned.
"""
from __future__ import annotations

import torch

from dynface.core.kernels import gaussian_blur, kernel_radius


def sigma_grid(sigma_min: float = 0.1, sigma_max: float = 15.0, count: int = 150) -> torch.Tensor:
    """The grid {sigma_min, ..., sigma_max} (paper: 0.1 .. 15.0 in steps of 0.1)."""
    return torch.linspace(sigma_min, sigma_max, count)


@torch.no_grad()
def blur_distances(x: torch.Tensor, r: torch.Tensor, grid: torch.Tensor, metric: str = "mae",
                   chunk: int = 16) -> torch.Tensor:
    """d(k_s x, k_s r) for every image and every s on the grid: (B, S). x, r in [-1, 1]."""
    diff = (x - r).float() / 2  # blur is linear: k (x) x - k (x) r = k (x) (x - r); [0,1] scale
    out = []
    for s in grid.split(chunk):
        rad = kernel_radius(float(s.max()))
        d = gaussian_blur(diff, s.repeat_interleave(diff.shape[0]), radius=rad)  # (S*B, ...) sigma-major
        d = d.reshape(len(s), diff.shape[0], *diff.shape[1:])
        v = d.abs().mean(dim=(2, 3, 4)) if metric == "mae" else d.pow(2).mean(dim=(2, 3, 4))
        out.append(v.t())
    return torch.cat(out, dim=1)


def sigma_star(x: torch.Tensor, r: torch.Tensor, grid: torch.Tensor, eps: float, metric: str = "mae") -> torch.Tensor:
    """Eq. 19: smallest grid sigma whose blurred distance is within eps; (B,) sigmas."""
    grid = grid.to(x.device)
    d = blur_distances(x, r, grid, metric)
    ok = d <= eps
    idx = torch.where(ok.any(dim=1), ok.float().argmax(dim=1), torch.full_like(ok[:, 0], len(grid) - 1, dtype=torch.long))
    return grid[idx]
