"""`dynface clean`: restore a whole image folder (extrinsic enhancement, IDM); resumable (jobs/clean.py)."""
from __future__ import annotations

import sys

from dynface.cli.flags import (add_engine_options, add_max_pixels, add_number, add_option_flag, add_runtime_options,
                               engine_workers, options_from_args)


def register(sub) -> None:
    p = sub.add_parser("clean", help="restore a whole image folder (extrinsic enhancement, IDM); resumable")
    p.add_argument("dataset")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--weights-dir", default=None)
    add_option_flag(p, "method", choices=("idm", "dynface", "rm"), default="idm", help=None)
    add_option_flag(p, "steps", help="network evaluations (default: model set's)")
    add_option_flag(p, "seed", help="run seed; each image's own seed is derived from it and the file name")
    add_number(p, "--batch", lo=1, hi=1024, default=4, help="with --engine ray: files per Ray task")
    add_number(p, "--limit", lo=1, default=None, help="only the first N images (sorted by name)")
    p.add_argument("--split", choices=["all", "train", "val"], default="all")
    add_max_pixels(p)
    add_runtime_options(p)
    add_engine_options(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_clean)


def cmd_clean(a) -> int:
    from dynface.core.hardware import set_threads
    from dynface.core.imageio import list_images
    from dynface.jobs.clean import clean_folder
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import Restorer, RestoreOptions

    workers = engine_workers(a)
    list_images([a.dataset])  # a missing dataset fails before any model is loaded
    set_threads(a.threads)
    models = ModelSet.load(a.weights_dir)
    # clean takes only `steps` from the model set; n_guidance stays the RestoreOptions default
    opt = options_from_args(a, models, n_guidance=RestoreOptions.n_guidance)
    if a.engine == "ray":
        from dynface.engines.ray_engine import clean_folder_ray

        rep = clean_folder_ray(a.dataset, a.output, a.weights_dir, opt, limit=a.limit, split=a.split,
                               address=a.address, workers=workers, threads=a.threads or 1, batch=a.batch,
                               progress=not a.quiet, size=models.size)
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
