"""`dynface weights`: where the official checkpoints go, whether they are there and intact (never downloads)."""
from __future__ import annotations

import sys


def register(sub) -> None:
    from dynface.modelset.catalogue import CHECKPOINTS, MODEL_SETS
    from dynface.modelset.official import ENV_WEIGHTS_DIR

    names = list(CHECKPOINTS)
    presets = list(MODEL_SETS)  # `--preset NAME` / `export NAME`: an official model set
    wd_help = f"folder of the weights (default: ${ENV_WEIGHTS_DIR}, else ~/.cache/dynface/weights)"
    p = sub.add_parser("weights", help="official checkpoints: where they go, are they there and intact (never downloads)")
    wsub = p.add_subparsers(dest="weights_cmd", required=True)

    q = wsub.add_parser("list", help="every official file: name, file name, expected place, public URL, present?")
    q.add_argument("--weights-dir", default=None, help=wd_help)
    q.set_defaults(func=cmd_weights_list)

    q = wsub.add_parser("verify", help="check files: present, size/sha256 where published, keys and shapes")
    q.add_argument("names", nargs="*", metavar="NAME",
                   help=f"files to check (default: all, or those of --preset): {', '.join(names)}")
    q.add_argument("--preset", choices=presets, default=None,
                   help="check the official files of this preset and report its user-trained stages")
    q.add_argument("--weights-dir", default=None, help=wd_help)
    q.add_argument("--no-hash", action="store_true", help="skip the sha256 (faster on big files)")
    q.set_defaults(func=cmd_weights_verify)

    q = wsub.add_parser("path", help="print where one file is expected")
    q.add_argument("name", choices=names)
    q.add_argument("--weights-dir", default=None, help=wd_help)
    q.add_argument("--check", action="store_true", help="exit 1 when the file is not there")
    q.set_defaults(func=cmd_weights_path)

    q = wsub.add_parser("export", help="write a preset's official networks as dynface safetensors "
                                       "(prior.safetensors, rm.safetensors) for training configs")
    q.add_argument("preset", choices=presets)
    q.add_argument("-o", "--output", required=True, help="output folder")
    q.add_argument("--weights-dir", default=None, help=wd_help)
    q.add_argument("--fp16", action="store_true", help="store float16 (half the size; default float32 as released)")
    q.set_defaults(func=cmd_weights_export)


def _size_text(n) -> str:
    return f"{n:,} B" if n is not None else "not published"


def cmd_weights_list(a) -> int:
    from dynface.modelset.catalogue import MODEL_SETS
    from dynface.modelset.official import weights_dir, weights_list

    used = {}
    for p in MODEL_SETS.values():
        for name in (p.prior, p.rm):
            if name:
                used.setdefault(name, []).append(p.name)
    print(f"weights folder: {weights_dir(a.weights_dir)}")
    for d in weights_list(a.weights_dir):
        print(f"{d['name']}  [{'present' if d['present'] else 'MISSING'}]")
        print(f"  file     {d['filename']}  ({d['params']:,} parameters; preset {', '.join(used.get(d['name'], []))})")
        print(f"  expected {d['path']}")
        print(f"  source   {d['url']}")
        print(f"  size     {_size_text(d['size'])}   sha256 {d['sha256'] or 'not published'}")
    print("URLs are printed only: dynface never downloads. `dynface weights verify` checks the files.")
    return 0


def cmd_weights_verify(a) -> int:
    from dynface.modelset.catalogue import MODEL_SETS
    from dynface.modelset.official import own_stage_files
    from dynface.modelset.official import weights_dir, weights_verify

    names = list(a.names)
    if a.preset and not names:
        p = MODEL_SETS[a.preset]
        names = [n for n in (p.prior, p.rm) if n]
    results = weights_verify(a.weights_dir, names or None, hash_files=not a.no_hash)
    print(f"weights folder: {weights_dir(a.weights_dir)}")
    for r in results:
        print(r.summary())
    bad = [r for r in results if not r.ok]
    if a.preset:
        print(f"user-trained stages of {a.preset} (optional; a missing one must be switched off):")
        switch = {"rm": "--no-dblm (and not --method rm)", "tm": "--no-dblm", "sde": "--no-dblm",
                  "dgsa": "--no-dgsa", "dsst": "--no-dsst"}
        for stage, path in own_stage_files(a.preset, a.weights_dir).items():
            state = "present" if path.is_file() else f"not found -> use {switch[stage]}"
            print(f"  {stage:5s} {path}  {state}")
    if bad:
        for r in bad:
            what = "missing" if not r.exists else "bad"
            print(f"dynface: error: {r.name}: {what}: {r.path}", file=sys.stderr)
        print(f"dynface: error: {len(bad)} of {len(results)} official file(s) missing or bad", file=sys.stderr)
        return 1
    print(f"all {len(results)} file(s) OK")
    return 0


def cmd_weights_path(a) -> int:
    from dynface.modelset.official import official_file

    path = official_file(a.name, a.weights_dir, must_exist=False)
    print(path)
    if a.check and not path.is_file():
        print(f"dynface: error: {a.name}: not found at {path}", file=sys.stderr)
        return 1
    return 0


def cmd_weights_export(a) -> int:
    import torch

    from dynface.modelset.official import export_for_training

    out = export_for_training(a.preset, a.output, a.weights_dir, torch.float16 if a.fp16 else torch.float32)
    for stage, path in out.items():
        print(f"{stage}: {path}")
    return 0
