"""`dynface eval`: metrics of restored images against ground truth or a reference set (metrics/)."""
from __future__ import annotations

import sys

from dynface.cli.flags import add_max_pixels, add_number
from dynface.core.imageio import ImageError
from dynface.metrics.evaluate import evaluate
from dynface.metrics.names import ALL_METRICS, unknown_metrics
from dynface.metrics.report import format_table, write_report


def register(sub) -> None:
    p = sub.add_parser("eval", help="metrics of restored images: PSNR/SSIM, ID (dlib), LMD, FID/KID, NIQE, BRISQUE")
    p.add_argument("--restored", required=True)
    p.add_argument("--gt", default=None)
    p.add_argument("--ref", default=None, help="reference set for FID/KID when there is no ground truth")
    p.add_argument("-o", "--output", default=None, help="folder for metrics.csv / metrics.json")
    p.add_argument("--metrics", default=None, help="comma list (default: all that can run)")
    p.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on the Y channel instead of RGB")
    add_number(p, "--crop-border", lo=0, hi=4096, default=0, help="pixels removed on each side before PSNR/SSIM/NIQE")
    add_max_pixels(p)
    p.set_defaults(func=run_eval_cli)


def run_eval_cli(args) -> int:
    """For ``dynface eval``: reads args.restored, args.gt, args.ref, args.output (or args.out /
    args.o), args.metrics (comma list), args.y_channel, args.crop_border (all but restored
    optional); prints the table, writes the report when an output folder is given.
    Returns 0 when every row is ok, 1 when any row failed (listed on stderr), 2 on a usage/input
    problem."""
    out = getattr(args, "output", None) or getattr(args, "out", None) or getattr(args, "o", None)
    unknown = unknown_metrics(getattr(args, "metrics", None))
    if unknown:  # a typo must not compute nothing with exit 0
        print(f"dynface eval: error: unknown metric(s) {', '.join(unknown)} (known: {', '.join(ALL_METRICS)})",
              file=sys.stderr)
        return 2
    try:
        res = evaluate(args.restored, getattr(args, "gt", None), getattr(args, "ref", None),
                       metrics=getattr(args, "metrics", None), y_channel=bool(getattr(args, "y_channel", False)),
                       crop_border=int(getattr(args, "crop_border", 0) or 0))
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(res))
    if out:
        paths = write_report(res, out)
        print(f"wrote {paths['csv']} and {paths['json']}")
    if res.n_errors:
        print(f"{res.n_errors} of {len(res.rows)} image(s) failed:", file=sys.stderr)
        for r in res.rows:
            if r.get("status", "ok") != "ok":
                print(f"  {r['name']}: {r['status']}", file=sys.stderr)
        return 1
    return 0
