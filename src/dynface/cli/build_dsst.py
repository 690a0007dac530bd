"""`dynface build-dsst`: build the DSST table (Eq. 11) of a model set (jobs/dsst_table.py)."""
from __future__ import annotations

from dynface.cli.flags import IMAGE_SIDE_MAX, add_number
from dynface.core.sigma_label import sigma_grid
from dynface.pipeline import T_MAX


def register(sub) -> None:
    p = sub.add_parser("build-dsst", help="build the DSST table (Eq. 11) for a model set")
    p.add_argument("--data", default="../shared/data/utkface")
    add_number(p, "--size", lo=8, hi=IMAGE_SIDE_MAX, default=128)
    add_number(p, "--sigma-grid", kind=float, lo=0.0, lo_open=True, hi=1000.0, nargs=3, default=[0.025, 3.75, 150],
               metavar=("MIN", "MAX", "N"), help="sigma grid: MIN < MAX, N >= 2 points")
    add_number(p, "--images", lo=1, default=512, help="training faces used for D(sigma)")
    add_number(p, "--t-hi", lo=1, hi=T_MAX, default=925, help="t* at the largest calibration sigma")
    add_number(p, "--calib-sigma", kind=float, lo=0.0, lo_open=True, hi=1000.0, default=None,
               help="sigma whose t* is --t-hi (default: grid max)")
    add_number(p, "--tau", kind=float, lo=0.0, lo_open=True, hi=1e6, default=None,
               help="tolerance tau (default: calibrated)")
    p.add_argument("-o", "--output", required=True, help="dsst.json to write")
    p.add_argument("--cache-dir", default="runs/cache")
    p.set_defaults(func=cmd_build_dsst)


def cmd_build_dsst(a) -> int:
    from dynface.jobs.dsst_table import build_dsst

    lo, hi, n = a.sigma_grid
    if not (lo < hi and n == int(n) and 2 <= n <= 10000):
        raise ValueError(f"--sigma-grid {lo:g} {hi:g} {n:g}: need MIN < MAX and an integer N in 2..10000")
    d = build_dsst(a.data, a.size, sigma_grid(lo, hi, int(n)), a.images, a.t_hi, a.calib_sigma, a.tau, a.cache_dir)
    d.save(a.output)
    print(f"tau = {d.tau:.5f}; t*(sigma_min) = {int(d.tstar[0])}, t*(sigma_max) = {int(d.tstar[-1])}; wrote {a.output}")
    return 0
