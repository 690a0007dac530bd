"""What users see: FFHQ-aligned faces restored as `dynface restore --aligned` does, scored on the
whole 512 px image and at 128 px, for one model set or several side by side.

    python benchmarks/aligned512.py ../shared/data/london --set shipped= --set rm_ffhq=DIR \\
        [--methods "RM only,DynFaceRestore"] [--limit 16] [-o table.md] [--grid grid.jpg]
    # methods: any row of `dynface bench` (RM only, IDM, +DSST, default, w=0.5, eta=0, ...), and
    #          DynFaceRestore (= default), DynFaceRestore + flip (--flip-average),
    #          DynFaceRestore + result upsampled (--upsample-detail result),
    #          "DynFaceRestore eta=0" and "DynFaceRestore eta=0.5" (--eta: DDIM to ancestral steps),
    #          "DynFaceRestore without DGSA" (--no-dgsa: one guidance scale for every pixel)

`--set LABEL=DIR`: a model set folder (empty: the embedded set); its manifest's template decides
how much of the aligned crop it restores (utkface: the inner face, pasted back; ffhq: all of it).
Each clean face, resized to 512, is taken down to 128 px, degraded with the first set's training
ranges (manifest `degradation`, seed 0, face i's own stream) and brought back to 512 bicubically:
the low-quality aligned photo a user sends. Rows: the input and each set's methods; columns: PSNR,
SSIM and detail ratio (mean |Laplacian| against the truth's; 1 = as much fine detail) on the
whole 512 px image and on both taken to 128 px; at 512 px also NIQE (lower is better), dlib's
identity distance to the truth (lower is better; < 0.6 = the same person by dlib's rule) and paired
KID x 1000 against the truths (Inception features; with 16 faces a coarse figure). A set with a face
upsampler (`docs/method.md` §8a) uses it, as `dynface restore` does. `--grid`: input | each row |
truth, first 4 faces, labelled (London Set faces may be committed with their attribution,
docs/figures.md; the other sets' never are).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace

import cv2


#: this benchmark's names (those of docs/quality.md's 512 px tables) for rows of `dynface bench`
ALIASES = {"DynFaceRestore": "default", "DynFaceRestore + flip": "default + flip",
           "DynFaceRestore without DGSA": "default without DGSA",
           "DynFaceRestore eta=0": "eta=0", "DynFaceRestore eta=0.5": "eta=0.5"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clean_dir")
    ap.add_argument("--set", action="append", default=[], metavar="LABEL=DIR", dest="sets")
    ap.add_argument("--methods", default="RM only,DynFaceRestore")
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("-o", "--output", default=None)
    ap.add_argument("--grid", default=None)
    a = ap.parse_args(argv)
    import torch

    from synth_speed import write_table  # benchmarks/ is the script's folder, first on sys.path

    from dynface.core.degradation import DegradationConfig, degrade_random
    from dynface.core.hardware import set_threads
    from dynface.core.imageio import list_images, read_rgb, to_tensor, to_uint8, write_image
    from dynface.face.templates import template_for
    from dynface.face.whole import reframe_aligned
    from dynface.jobs.ablation import ROWS
    from dynface.jobs.batch import make_restore_fn
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import Restorer, RestoreOptions

    set_threads(a.threads)
    sets = [(label, ModelSet.load(folder or None)) for label, _, folder in (s.partition("=") for s in a.sets or ["shipped="])]
    methods = {name: kw for name, kw in ROWS if name != "input"}  # every row of `dynface bench`
    methods.update({alias: methods[row] for alias, row in ALIASES.items()})
    methods["DynFaceRestore + result upsampled"] = {"upsample_detail": "result"}
    wanted = [m.strip() for m in a.methods.split(",")]
    unknown = [m for m in wanted if m not in methods]
    if unknown:
        raise SystemExit(f"error: unknown method(s) {unknown}; choose from {list(methods)}")
    dcfg = DegradationConfig.from_dict(sets[0][1].manifest.get("degradation"))
    restorers = []  # (row name, restore_fn, template points, crop size) per set and method, built once
    for label, ms in sets:
        rst, base = Restorer(ms), RestoreOptions.for_models(ms, seed=0)
        tmpl = template_for(ms.manifest.get("template", "utkface"), ms.size)
        for m in wanted:
            opt = replace(base, **methods[m])
            restorers.append((f"{label}: {m}", make_restore_fn(rst, opt, show_steps=False), tmpl, ms.size))
    rows, images, truths = {"input": []}, {}, []
    faces_out = {"input": [], "truth": []}
    for i, f in enumerate(list_images([a.clean_dir])[: a.limit]):
        clean = cv2.resize(read_rgb(f), (512, 512), interpolation=cv2.INTER_AREA)
        small = to_tensor(cv2.resize(clean, (128, 128), interpolation=cv2.INTER_AREA))
        low = to_uint8(degrade_random(small, dcfg, 0, i)[0])
        sent = cv2.resize(low, (512, 512), interpolation=cv2.INTER_CUBIC)
        outs = {"input": sent}
        for name, fn, tmpl, size in restorers:
            outs[name] = reframe_aligned(sent, "ffhq", tmpl, size, restore_fn=fn).image
        truths.append(clean)
        for name, out in outs.items():
            rows.setdefault(name, []).append(scores(out, clean))
            images.setdefault(name, []).append(out)
            if i < 4:
                faces_out.setdefault(name, []).append(cv2.resize(out, (256, 256), interpolation=cv2.INTER_AREA))
        if i < 4:
            faces_out["truth"].append(cv2.resize(clean, (256, 256), interpolation=cv2.INTER_AREA))
        print(f"face {i + 1}: " + ", ".join(f"{n} {s[0]:.2f} dB" for n, s in ((n, r[-1]) for n, r in rows.items())),
              file=sys.stderr, flush=True)
    from dynface.metrics.fid import inception_features, kid_from_features

    truth_feats = inception_features(truths)
    table = ["| row | PSNR 512 | SSIM 512 | detail 512 | NIQE 512 | ID dist 512 | KID 512 | PSNR 128 | SSIM 128 | detail 128 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        mean = [statistics.mean(col) for col in zip(*r)]
        kid = 1000 * kid_from_features(inception_features(images[name]), truth_feats, paired=True)
        cells = [f"{v:.3f}" if k in (1, 6) else f"{v:.2f}" for k, v in enumerate(mean)]
        table.append(f"| {name} | " + " | ".join([*cells[:5], f"{kid:.1f}", *cells[5:]]) + " |")
    if a.grid:
        from dynface.jobs.ablation import make_grid

        order = ["input", *[n for n in faces_out if n not in ("input", "truth")], "truth"]
        label = (lambda n: n.partition(": ")[2] or n) if len(sets) == 1 else (lambda n: n)
        write_image(a.grid, make_grid([(label(n), faces_out[n]) for n in order], 4), quality=90)
        print(f"wrote {a.grid} (columns: {', '.join(order)})", file=sys.stderr)
    sets_line = "; ".join(f"{label}: {json.dumps(ms.manifest.get('template'))} template, {ms.describe()}"
                          for label, ms in sets)
    return write_table(table, a.output, f"{len(rows['input'])} faces of {a.clean_dir}; {sets_line}")


def scores(out, clean) -> tuple:
    """PSNR, SSIM, detail ratio, NIQE and dlib identity distance of `out` against `clean` at 512 px,
    then PSNR, SSIM, detail ratio with both taken to 128 px."""
    from dynface.core.imagemetrics import detail_ratio, psnr, ssim_pm1
    from dynface.core.imageio import to_tensor
    from dynface.metrics.identity import identity
    from dynface.metrics.noref import niqe

    o, c = to_tensor(out), to_tensor(clean)
    o128 = to_tensor(cv2.resize(out, (128, 128), interpolation=cv2.INTER_AREA))
    c128 = to_tensor(cv2.resize(clean, (128, 128), interpolation=cv2.INTER_AREA))
    return (psnr(o, c), ssim_pm1(o, c), detail_ratio(o, c), niqe(out), identity(out, clean)["id_dist"],
            psnr(o128, c128), ssim_pm1(o128, c128), detail_ratio(o128, c128))


if __name__ == "__main__":
    sys.exit(main())
