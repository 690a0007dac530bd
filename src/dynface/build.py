"""Building the non-trained parts of a model set: the DSST table (METHOD §4)."""
from __future__ import annotations

import torch

from . import data as data_mod
from .dsst import DSST, calibrate_tau, expected_blur_gap
from .schedule import Schedule
from .sigma_label import sigma_grid


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
    from .dsst import start_steps

    d.tstar = start_steps(gap, tau, sched)
    return d


def build_dsst_cli(a) -> int:
    lo, hi, n = a.sigma_grid
    if not (lo < hi and n == int(n) and 2 <= n <= 10000):
        raise ValueError(f"--sigma-grid {lo:g} {hi:g} {n:g}: need MIN < MAX and an integer N in 2..10000")
    d = build_dsst(a.data, a.size, sigma_grid(lo, hi, int(n)), a.images, a.t_hi, a.calib_sigma, a.tau, a.cache_dir)
    d.save(a.output)
    print(f"tau = {d.tau:.5f}; t*(sigma_min) = {int(d.tstar[0])}, t*(sigma_max) = {int(d.tstar[-1])}; wrote {a.output}")
    return 0
