"""`dynface bench`: the paper's Table 3 ablation on clean faces degraded with a seed.

Protocol: each clean face is aligned to the model set's template at its size (5-point detection,
similarity warp; the FFHQ template if no face is found) and that crop is the ground truth. It is
degraded with the model set's degradation ranges (seed S, stream = file name) and restored
under each setting; metrics come from `dynface.metrics.evaluate` against the ground truth.
Row groups: `ablation` (the default), `fidelity` (the sweep of `--fidelity` w over
0, 0.25, 0.5, 0.75, 1; docs/fidelity.md), `steps` (the full method at 25, 50 and 100 network
evaluations: detail against time), `eta` (DDIM to ancestral steps), `flip` (flip averaging) and
`dgsa` (the default with one guidance scale for every pixel); `--settings` takes row or group names.
Outputs: `table.md`, `table.csv`, `results.json`, `grid.png`, `tradeoff.png`, and with the fidelity
group `fidelity.png` (each metric against w). The detail ratio is high-frequency energy of the
output over that of the ground truth (`detail_ratio`): < 1 smoother than the truth, > 1 more
(possibly invented) detail.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dynface.core.degradation import DegradationConfig, degrade_random
from dynface.core.fidelity_control import FIDELITY_DEFAULT
from dynface.core.hardware import machine_header
from dynface.core.imageio import ImageError, list_images, read_rgb, to_tensor, to_uint8, write_bytes_atomic, write_image
from dynface.core.imagemetrics import detail_ratio
from dynface.jobs.batch import stable_index
from dynface.pipeline import Restorer, RestoreOptions

_PAPER = dict(fidelity=FIDELITY_DEFAULT)  # the paper's setting, whatever fidelity the model set defaults to
# (row name, options relative to the full pipeline) — cumulative, as in the paper's Table 3 and at its
# setting; "default" is what `dynface restore` does with the model set's own defaults (the same as
# "+DGSA (full)" for a set that presets no fidelity)
ABLATION = [
    ("input", dict(method="bicubic")),
    ("RM only", dict(method="rm")),
    ("DM only", dict(dblm=False, n_guidance=1, dsst=False, dgsa=False, refine=False, **_PAPER)),
    ("+DBLM", dict(n_guidance=1, dsst=False, dgsa=False, **_PAPER)),
    ("+multi", dict(dsst=False, dgsa=False, **_PAPER)),
    ("+DSST", dict(dgsa=False, **_PAPER)),
    ("+DGSA (full)", dict(_PAPER)),
    ("default", dict()),
    ("IDM", dict(method="idm")),
]
FIDELITY_SWEEP = [(f"w={w:g}", dict(fidelity=w)) for w in (0.0, 0.25, 0.5, 0.75, 1.0)]
STEPS_SWEEP = [(f"steps={n}", dict(steps=n)) for n in (25, 50, 100)]
ETA_SWEEP = [(f"eta={e:g}", dict(eta=e)) for e in (0.0, 0.5, 1.0)]  # 0: DDIM steps, 1: ancestral (Eq. 6)
FLIP = [("RM only + flip", dict(method="rm", flip_average=True)), ("default + flip", dict(flip_average=True))]
DGSA_OFF = [("default without DGSA", dict(dgsa=False))]  # the set's own fidelity, one scale for every pixel
GROUPS = {"ablation": ABLATION, "fidelity": FIDELITY_SWEEP, "steps": STEPS_SWEEP, "eta": ETA_SWEEP, "flip": FLIP, "dgsa": DGSA_OFF}
ROWS = [row for group in GROUPS.values() for row in group]  # every row, in table order


def aligned_ground_truth(path, template, size: int) -> np.ndarray:
    """The clean face aligned to the model's template (detected 5 points; FFHQ template fallback)."""
    from dynface.face.whole import reframe_aligned, restore_whole_image

    rgb = read_rgb(path)
    crops = []

    def grab(cs):
        crops.extend(cs)
        return cs

    restore_whole_image(rgb, grab, template, size, only_center_face=True)
    if not crops:
        reframe_aligned(rgb, "ffhq", template, size, restore_fn=grab)
    return crops[0]


def setting_names(restorer: Restorer, include=None) -> list[tuple[str, dict]]:
    """Rows to run: `include` lists row and group names (default: the ablation group)."""
    have = restorer.models.nets
    include = list(include or ["ablation"])
    wanted = {name for g in include for name, _ in GROUPS.get(g, [])} | set(include)
    known = {name for name, _ in ROWS} | set(GROUPS)
    unknown = [n for n in include if n not in known]
    if unknown:
        raise ValueError(f"unknown bench setting(s) {', '.join(unknown)}; rows: "
                         f"{', '.join(n for n, _ in ROWS)}; groups: {', '.join(GROUPS)}")
    rows = []
    for name, kw in ROWS:
        if name not in wanted:
            continue
        m = kw.get("method", "dynface")
        if m == "idm" and "idm" not in have:
            continue
        if m == "dynface" and kw.get("dgsa", True) and "dgsa" not in have:
            continue
        rows.append((name, kw))
    return rows


def run_bench(clean_dir, out_dir, restorer: Restorer, base: RestoreOptions, seed: int = 0, limit: int | None = None,
              settings=None, grid_faces: int = 6, progress: bool = True) -> dict:
    from dynface.face.templates import template_for
    from dynface.metrics.evaluate import evaluate

    out = Path(out_dir)
    ms = restorer.models
    size = ms.size
    template = template_for(ms.manifest.get("template", "utkface"), size)
    dcfg = DegradationConfig.from_dict(ms.manifest.get("degradation"))
    from dynface.jobs.batch import list_inputs

    if not Path(clean_dir).is_dir():
        raise ImageError(f"{clean_dir}: not a folder of clean faces")
    files = list_inputs([clean_dir])[: limit or None]  # an empty folder is one line, not a torch error
    gts, ys, names = [], [], []
    for f in tqdm(files, desc="aligning + degrading", disable=not progress):
        gt = aligned_ground_truth(f, template, size)
        y, p = degrade_random(to_tensor(gt), dcfg, seed, stable_index(f.name))
        write_image(out / "gt" / f"{f.stem}.png", gt)
        write_image(out / "degraded" / f"{f.stem}.png", to_uint8(y))
        gts.append(gt)
        ys.append(y)
        names.append(f.stem)
    y = torch.cat(ys)
    rows, images = [], {}
    for name, kw in setting_names(restorer, settings):
        opt = replace(base, **kw)
        slug = name.replace(" ", "_").replace("+", "plus_").replace("(", "").replace(")", "")
        outs, secs = [], []
        for i in tqdm(range(len(names)), desc=name, disable=not progress):
            t0 = time.perf_counter()
            res = restorer.restore(y[i:i + 1], replace(opt, seed=seed + i))
            secs.append(time.perf_counter() - t0)
            o = to_uint8(res.images[0])
            outs.append(o)
            write_image(out / slug / f"{names[i]}.png", o)
        ev = evaluate(out / slug, out / "gt", metrics="psnr,ssim,id,fid,kid,niqe")
        row = {"setting": name, "fidelity": kw.get("fidelity"),
               **{k: ev.means.get(k) for k in ("psnr", "ssim", "id_cos", "niqe")},
               "fid": ev.set_metrics.get("fid"), "kid": ev.set_metrics.get("kid"),
               "detail_ratio": detail_ratio(torch.stack([to_tensor(o)[0] for o in outs]),
                                            torch.stack([to_tensor(g)[0] for g in gts])),
               "sec_per_face_median": float(np.median(secs)), "n": len(names)}
        rows.append(row)
        images[name] = outs
    result = {"seed": seed, "size": size, "faces": names, "rows": rows, "model_set": ms.describe(),
              "machine": machine_header()[:2], "threads": torch.get_num_threads(),
              "degradation": dcfg.to_dict(), "options": base.__dict__}
    write_bytes_atomic(out / "results.json", json.dumps(result, indent=1, default=str).encode())
    write_bytes_atomic(out / "table.md", "\n".join([*machine_header(), f"Model set: {ms.describe()}", "",
                                                     format_markdown(rows)]).encode())
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_bytes_atomic(out / "table.csv", buf.getvalue().encode())
    write_image(out / "grid.png", make_grid([("ground truth", gts)] + list(images.items()), grid_faces))
    plot_tradeoff(rows, out / "tradeoff.png")
    if sum(r["fidelity"] is not None for r in rows) >= 2:
        plot_fidelity(rows, out / "fidelity.png")
    return result


def _f(v, nd=2):
    return "–" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def format_markdown(rows) -> str:
    lines = ["| setting | PSNR ↑ | SSIM ↑ | ID cos (dlib) ↑ | detail ratio | FID ↓ | KID ×1000 ↓ | NIQE ↓ | s / face |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kid = None if r["kid"] is None else r["kid"] * 1000
        lines.append(f"| {r['setting']} | {_f(r['psnr'])} | {_f(r['ssim'], 3)} | {_f(r['id_cos'], 3)} "
                     f"| {_f(r.get('detail_ratio'), 3)} | {_f(r['fid'], 1)} "
                     f"| {_f(kid, 1)} | {_f(r['niqe'])} | {_f(r['sec_per_face_median'], 1)} |")
    return "\n".join(lines) + "\n"


def make_grid(columns: list[tuple[str, list[np.ndarray]]], n_faces: int) -> np.ndarray:
    """Rows = faces, columns = settings, with a label strip on top."""
    import cv2

    n = min(n_faces, len(columns[0][1]))
    s = columns[0][1][0].shape[0]
    label_h = 18
    cols = []
    for name, imgs in columns:
        strip = np.full((label_h, s, 3), 255, np.uint8)
        cv2.putText(strip, name[: max(18, s // 7)], (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        cols.append(np.concatenate([strip] + [imgs[i] for i in range(n)], 0))
    return np.concatenate(cols, 1)


def plot_tradeoff(rows, path) -> None:
    """Fidelity vs quality: PSNR against FID and KID, one point per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "fid", "FID ↓"), (axes[1], "kid", "KID ↓")):
        for r in rows:
            if r["psnr"] is None or r[key] is None:
                continue
            ax.scatter(r[key], r["psnr"])
            ax.annotate(r["setting"], (r[key], r["psnr"]), fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("PSNR (dB) ↑")
        ax.grid(alpha=0.3)
    fig.suptitle("fidelity vs quality per setting")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def plot_fidelity(rows, path) -> None:
    """Each metric of the fidelity rows against w (one panel per metric)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fr = sorted((r for r in rows if r["fidelity"] is not None), key=lambda r: r["fidelity"])
    panels = [("psnr", "PSNR (dB) ↑"), ("ssim", "SSIM ↑"), ("id_cos", "ID cos (dlib) ↑"),
              ("detail_ratio", "detail ratio (1 = as the truth)"), ("niqe", "NIQE ↓"), ("kid", "KID ×1000 ↓")]
    fig, axes = plt.subplots(2, 3, figsize=(11, 6))
    for ax, (key, label) in zip(axes.flat, panels):
        pts = [(r["fidelity"], r[key] * (1000 if key == "kid" else 1)) for r in fr if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), "o-")
        ax.set_xlabel("fidelity w")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(f"--fidelity sweep ({fr[0]['n']} faces)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
