"""Grid on real degraded faces without ground truth (the `val/real` grid of docs/quality.md).

    python benchmarks/real_grid.py ../shared/data/val/real -o out/real_grid.jpg --faces 6

For looking on your own machine: `val/real`'s licences are research-only, so grids of its faces stay
out of the repository (`out/` is ignored; docs/figures.md lists what is committed and why).

Each FFHQ-aligned crop is restored as `dynface restore --aligned` does (re-framed to the model's
template, restored, mapped back to the input's framing) by each method; rows are faces, columns are
input | RM only | DynFaceRestore | ("no upsampler": DynFaceRestore with `--no-upsample`, where the set
has a face upsampler |) IDM, each at `--px` px (160; the upsampler's detail shows from about 256).
`--rm-arm LABEL=FILE` (repeatable) adds an "RM: LABEL" column restored by another RM export (e.g.
the arms of a training ablation).
"""
from __future__ import annotations

import argparse
import copy
from dataclasses import replace

import cv2
import numpy as np
import torch
from tqdm import tqdm

from dynface.core.hardware import set_threads
from dynface.core.imageio import list_images, read_rgb, write_image
from dynface.face.templates import template_for
from dynface.face.whole import reframe_aligned
from dynface.jobs.ablation import make_grid
from dynface.jobs.batch import make_restore_fn
from dynface.modelset.checkpoint import load_network
from dynface.modelset.folder import ModelSet
from dynface.pipeline import Restorer, RestoreOptions


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("real_dir")
    ap.add_argument("-o", "--output", default="out/real_grid.jpg")
    ap.add_argument("--faces", type=int, default=6)
    ap.add_argument("--px", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="default: the physical cores available")
    ap.add_argument("--weights-dir", default=None)
    ap.add_argument("--rm-arm", action="append", default=[], metavar="LABEL=FILE",
                    help="an extra 'RM only' column with this RM safetensors (repeatable)")
    a = ap.parse_args(argv)
    a.threads = set_threads(a.threads)
    ms = ModelSet.load(a.weights_dir)
    restorer = Restorer(ms)
    tmpl = template_for(ms.manifest.get("template", "utkface"), ms.size)
    base = RestoreOptions.for_models(ms, seed=a.seed)  # each method at its default steps
    methods = [("input", None, restorer), ("RM only", replace(base, method="rm"), restorer),
               ("DynFaceRestore", base, restorer)]
    if "up" in ms.nets:  # what the face upsampler adds: the same restoration enlarged bicubically
        methods.append(("no upsampler", replace(base, upsample=False), restorer))
    if "idm" in ms.nets:
        methods.append(("IDM", replace(base, method="idm"), restorer))
    for arm in a.rm_arm:
        label, _, path = arm.partition("=")
        other = copy.copy(ms)
        other.nets = {**ms.nets, "rm": load_network(path, "rm")}
        methods.append((f"RM: {label}", replace(base, method="rm"), Restorer(other)))
    files = list_images([a.real_dir])[: a.faces]
    columns = {name: [] for name, _, _ in methods}
    for f in tqdm(files, desc="real faces", unit="face"):
        rgb = read_rgb(f)
        for name, opt, rst in methods:
            fn = None if opt is None else make_restore_fn(rst, opt, show_steps=False)
            out = reframe_aligned(rgb, "ffhq", tmpl, ms.size, restore_fn=fn).image
            columns[name].append(cv2.resize(out, (a.px, a.px), interpolation=cv2.INTER_AREA))
    grid = make_grid(list(columns.items()), len(files))
    write_image(a.output, np.ascontiguousarray(grid), quality=90)
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
