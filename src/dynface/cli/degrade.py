"""`dynface degrade`: the synthetic degradation of docs/method.md §1 on image files (seeded, parameters recorded)."""
from __future__ import annotations

from dynface.cli.flags import IMAGE_SIDE_MAX, add_max_pixels, add_number, finish
from dynface.pipeline import SEED_MAX


def register(sub) -> None:
    p = sub.add_parser("degrade", help="synthetic degradation of docs/method.md §1 (seeded, parameters recorded)")
    p.add_argument("inputs", nargs="+")
    p.add_argument("-o", "--output", required=True)
    add_number(p, "--seed", lo=0, hi=SEED_MAX, default=0)
    add_number(p, "--size", lo=8, hi=IMAGE_SIDE_MAX, default=None, help="resize clean images to SIZE^2 first")
    p.add_argument("--config", default=None, help="YAML with a `degradation:` block of ranges")
    from dynface.core.degradation import DegradationConfig

    lo, hi = DegradationConfig().scale_range()  # what the default ranges allow: help and check agree
    add_number(p, "--pixel-scale", kind=float, lo=lo, hi=hi, default=1.0,
               help="scale sigma and r ranges (e.g. 0.25 for the paper's 512^2 ranges at 128^2; "
                    "with --config, that file's ranges set the limits)")
    add_max_pixels(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_degrade)


def cmd_degrade(a) -> int:
    from dynface.core.degradation import DegradationConfig
    from dynface.jobs.batch import degrade_paths

    cfg = DegradationConfig()
    if a.config:
        cfg = DegradationConfig.from_file(a.config)
    if a.pixel_scale != 1.0:
        cfg = cfg.scaled(a.pixel_scale)
    rep = degrade_paths(a.inputs, a.output, cfg, a.seed, a.size, progress=not a.quiet)
    return finish(rep, a.output, "degraded")
