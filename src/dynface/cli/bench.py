"""`dynface bench`: the ablation benchmark (paper Table 3) on clean faces degraded with a seed (jobs/ablation.py)."""
from __future__ import annotations

import sys

from dynface.cli.flags import add_number, add_option_flag, add_runtime_options, options_from_args


def register(sub) -> None:
    p = sub.add_parser("bench", help="the ablation benchmark (paper Table 3) on clean faces degraded with a seed")
    p.add_argument("clean_dir")
    p.add_argument("-o", "--output", default="bench-out")
    add_option_flag(p, "seed")
    add_number(p, "--limit", lo=1, default=None, help="first N faces only")
    p.add_argument("--settings", default=None, help="comma list of rows or groups (ablation, fidelity, steps, eta, flip, or e.g. \"w=0.5\"; default: ablation)")
    p.add_argument("--weights-dir", default=None)
    add_option_flag(p, "steps")
    add_runtime_options(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_bench)


def cmd_bench(a) -> int:
    from dynface.core.hardware import set_threads
    from dynface.jobs.ablation import format_markdown, run_bench
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import Restorer

    set_threads(a.threads)
    models = ModelSet.load(a.weights_dir)
    base = options_from_args(a, models)  # steps, precision (each face's seed is set per face)
    settings = [s.strip() for s in a.settings.split(",")] if a.settings else None
    res = run_bench(a.clean_dir, a.output, Restorer(models), base, a.seed, a.limit, settings, progress=not a.quiet)
    print(format_markdown(res["rows"]))
    print(f"wrote {a.output}/table.md, table.csv, results.json, grid.png, tradeoff.png", file=sys.stderr)
    return 0
