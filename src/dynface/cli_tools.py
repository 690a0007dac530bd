"""Sub-commands for evaluation and data work: eval, bench, clean (parse, then call the library)."""
from __future__ import annotations

import sys


def register(sub) -> None:
    from .cli import add_engine_options, add_runtime_options
    from .cli_args import SEED_MAX, STEPS_MAX, add_max_pixels, add_number

    p = sub.add_parser("clean", help="restore a whole image folder (extrinsic enhancement, IDM); resumable")
    p.add_argument("dataset")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--weights-dir", default=None)
    p.add_argument("--method", choices=["idm", "dynface", "rm"], default="idm")
    add_number(p, "--steps", lo=1, hi=STEPS_MAX, default=None, help="network evaluations (default: model set's)")
    add_number(p, "--seed", lo=0, hi=SEED_MAX, default=0,
               help="run seed; each image's own seed is derived from it and the file name")
    add_number(p, "--batch", lo=1, hi=1024, default=4, help="with --engine ray: files per Ray task")
    add_number(p, "--limit", lo=1, default=None, help="only the first N images (sorted by name)")
    p.add_argument("--split", choices=["all", "train", "val"], default="all")
    add_max_pixels(p)
    add_runtime_options(p)
    add_engine_options(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_clean)
    register_eval_bench(sub)


def cmd_clean(a) -> int:
    from .cli import engine_workers
    from .clean import clean_folder
    from .hardware import set_threads
    from .imageio import list_images
    from .pipeline import ModelSet, Restorer, RestoreOptions

    workers = engine_workers(a)
    list_images([a.dataset])  # a missing dataset fails before any model is loaded
    set_threads(a.threads)
    models = ModelSet.load(a.weights_dir)
    opt = RestoreOptions(method=a.method, steps=a.steps if a.steps is not None else int(models.default("steps", 25)),
                         seed=a.seed, precision=a.precision)
    if a.engine == "ray":
        from .engines.ray_engine import clean_folder_ray

        rep = clean_folder_ray(a.dataset, a.output, a.weights_dir, opt, limit=a.limit, split=a.split,
                               address=a.address, workers=workers, threads=a.threads or 1, batch=a.batch,
                               progress=not a.quiet)
    else:
        rep = clean_folder(a.dataset, a.output, Restorer(models), opt, limit=a.limit, split=a.split,
                           progress=not a.quiet)
    for w in rep.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    print(f"cleaned {rep['written']} image(s), skipped {rep['skipped']} already done, into {a.output}",
          file=sys.stderr)
    for f, why in rep["failed"]:
        print(f"  failed: {why}", file=sys.stderr)
    return 1 if rep["failed"] else 0


def register_eval_bench(sub) -> None:
    from .cli import add_runtime_options
    from .cli_args import SEED_MAX, STEPS_MAX, add_max_pixels, add_number

    p = sub.add_parser("eval", help="metrics of restored images: PSNR/SSIM, ID (dlib), LMD, FID/KID, NIQE, BRISQUE")
    p.add_argument("--restored", required=True)
    p.add_argument("--gt", default=None)
    p.add_argument("--ref", default=None, help="reference set for FID/KID when there is no ground truth")
    p.add_argument("-o", "--output", default=None, help="folder for metrics.csv / metrics.json")
    p.add_argument("--metrics", default=None, help="comma list (default: all that can run)")
    p.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on the Y channel instead of RGB")
    add_number(p, "--crop-border", lo=0, hi=4096, default=0, help="pixels removed on each side before PSNR/SSIM/NIQE")
    add_max_pixels(p)
    p.set_defaults(func=lambda a: __import__("dynface.metrics.evaluate", fromlist=["run_eval_cli"]).run_eval_cli(a))

    p = sub.add_parser("bench", help="the ablation benchmark (paper Table 3) on clean faces degraded with a seed")
    p.add_argument("clean_dir")
    p.add_argument("-o", "--output", default="bench-out")
    add_number(p, "--seed", lo=0, hi=SEED_MAX, default=0)
    add_number(p, "--limit", lo=1, default=None, help="first N faces only")
    p.add_argument("--settings", default=None, help="comma list of rows or groups (ablation, fidelity, or e.g. \"w=0.5\"; default: ablation)")
    p.add_argument("--weights-dir", default=None)
    add_number(p, "--steps", lo=1, hi=STEPS_MAX, default=None)
    add_runtime_options(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_bench)


def cmd_bench(a) -> int:
    from .bench import format_markdown, run_bench
    from .hardware import set_threads
    from .pipeline import ModelSet, Restorer, RestoreOptions

    set_threads(a.threads)
    models = ModelSet.load(a.weights_dir)
    base = RestoreOptions(steps=a.steps if a.steps is not None else int(models.default("steps", 25)),
                          n_guidance=int(models.default("n_guidance", 3)), precision=a.precision)
    settings = [s.strip() for s in a.settings.split(",")] if a.settings else None
    res = run_bench(a.clean_dir, a.output, Restorer(models), base, a.seed, a.limit, settings, progress=not a.quiet)
    print(format_markdown(res["rows"]))
    print(f"wrote {a.output}/table.md, table.csv, results.json, grid.png, tradeoff.png", file=sys.stderr)
    return 0
