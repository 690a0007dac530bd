"""Sub-commands for evaluation and data work: eval, bench, clean (parse, then call the library)."""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("clean", help="restore a whole image folder (extrinsic enhancement, IDM); resumable")
    p.add_argument("dataset")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--weights-dir", default=None)
    p.add_argument("--method", choices=["idm", "dynface", "rm"], default="idm")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--limit", type=int, default=None, help="only the first N images (sorted by name)")
    p.add_argument("--split", choices=["all", "train", "val"], default="all")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_clean)


def cmd_clean(a) -> int:
    import torch

    from .clean import clean_folder
    from .pipeline import ModelSet, Restorer, RestoreOptions

    torch.set_num_threads(a.threads)
    models = ModelSet.load(a.weights_dir)
    opt = RestoreOptions(method=a.method, steps=a.steps or int(models.default("steps", 25)), seed=a.seed)
    rep = clean_folder(a.dataset, a.output, Restorer(models), opt, batch=a.batch, limit=a.limit, split=a.split,
                       progress=not a.quiet)
    print(f"cleaned {rep['written']} image(s), skipped {rep['skipped']} already done, into {a.output}",
          file=sys.stderr)
    for f, why in rep["failed"]:
        print(f"  failed: {why}", file=sys.stderr)
    return 1 if rep["failed"] else 0
