"""The DSST table of a model set (docs/method.md §4, Eq. 11): D(sigma) over training faces, tau calibrated."""
from __future__ import annotations

import torch

from dynface.core.dsst import DSST, calibrate_tau, expected_blur_gap
from dynface.core.schedule import Schedule
from dynface.training import data as data_mod


def build_dsst(data, size: int, grid: torch.Tensor, n_images: int = 512, t_hi: int = 925,
               calib_sigma: float | None = None, tau: float | None = None, cache_dir=None, seed: int = 0) -> DSST:
    """D(sigma) over `n_images` training faces; tau calibrated so that t*(calib_sigma) = t_hi."""
    images = data_mod.load_cache(data, size, "train", cache_dir=cache_dir)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(images), generator=g)[:n_images]
    imgs = images[idx].float().div(127.5).sub(1)
    sched = Schedule.linear()
    gap = expected_blur_gap(imgs, grid)
    if tau is None:
        tau = calibrate_tau(gap, float(grid[0]), float(calib_sigma or grid[-1]), grid, sched, t_hi)
    d = DSST(grid.clone(), gap, torch.zeros(len(grid), dtype=torch.long), float(tau), sched.num_steps)
    from dynface.core.dsst import start_steps

    d.tstar = start_steps(gap, tau, sched)
    return d
