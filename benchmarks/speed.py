"""Speed benchmark: the full DSST-length chain against few-step settings, same seeds.

    python benchmarks/speed.py ../shared/data/val/clean --faces 4 --full-faces 2 -o docs/speed

For each setting: network evaluations (NFE), seconds per face (median/min/max), PSNR, ID cosine
(dlib), KID (paired, against the aligned ground truth), and the per-stage time breakdown.
Then the cheap wins one by one on the default setting: precision (auto / fp32 / bf16), channels_last,
1 vs 2 threads, batch of faces in one call. On a CPU without native bf16, bf16 autocast is 70-90x
slower, so there it is timed on one face with `--slow-steps` steps and reported per step. The CPU
model, its flags and the torch build head the table. Writes `speed.md` and `speed.json`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dynface.core.degradation import DegradationConfig, degrade_random
from dynface.core.hardware import native_bf16, resolve_precision, set_threads
from dynface.core.hardware import machine_header
from dynface.core.imageio import list_images, to_tensor, to_uint8, write_bytes_atomic
from dynface.face.templates import template_for
from dynface.jobs.ablation import aligned_ground_truth
from dynface.jobs.batch import stable_index
from dynface.metrics.fid import inception_features, kid_from_features
from dynface.metrics.fidelity import psnr
from dynface.metrics.identity import identity
from dynface.modelset.folder import ModelSet
from dynface.pipeline import Restorer, RestoreOptions, method_steps


def prepare(clean_dir, ms: ModelSet, n: int, seed: int):
    tmpl = template_for(ms.manifest.get("template", "utkface"), ms.size)
    dcfg = DegradationConfig.from_dict(ms.manifest.get("degradation"))
    gts, ys = [], []
    for f in list_images([clean_dir])[:n]:
        gt = aligned_ground_truth(f, tmpl, ms.size)
        gts.append(gt)
        ys.append(degrade_random(to_tensor(gt), dcfg, seed, stable_index(f.name))[0])
    return gts, ys


def run_setting(restorer, ys, gts, opt: RestoreOptions, batch: bool = False):
    secs, outs, stage = [], [], {}
    nfe = 0
    if batch:
        t0 = time.perf_counter()
        res = restorer.restore(torch.cat(ys), opt)
        dt = (time.perf_counter() - t0) / len(ys)
        secs = [dt] * len(ys)
        outs = [to_uint8(res.images[i]) for i in range(len(ys))]
        nfe = res.nfe / max(1, len(torch.unique(res.t_start))) if res.t_start is not None else res.nfe
        stage = {k: v / len(ys) for k, v in res.seconds.items()}
    else:
        for i, y in enumerate(ys):
            t0 = time.perf_counter()
            res = restorer.restore(y, replace(opt, seed=opt.seed + i))
            secs.append(time.perf_counter() - t0)
            outs.append(to_uint8(res.images[0]))
            nfe += res.nfe / len(ys)
            for k, v in res.seconds.items():
                stage[k] = stage.get(k, 0.0) + v / len(ys)
    p = [psnr(o, g) for o, g in zip(outs, gts)]
    ids = [identity(o, g)["id_cos"] for o, g in zip(outs, gts)]
    return {"psnr_per_face": p, "nfe": round(nfe, 1), "sec_median": statistics.median(secs), "sec_min": min(secs), "sec_max": max(secs),
            "psnr": float(np.mean(p)), "id_cos": float(np.mean(ids)), "stage_seconds": stage, "outs": outs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clean_dir")
    ap.add_argument("-o", "--output", default="docs/speed")
    ap.add_argument("--weights-dir", default=None)
    ap.add_argument("--faces", type=int, default=4)
    ap.add_argument("--full-faces", type=int, default=2, help="faces for the (slow) full DSST-length chain")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="default: the physical cores available")
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--slow-steps", type=int, default=3, help="steps for a precision the CPU only emulates")
    a = ap.parse_args(argv)
    a.threads = set_threads(a.threads)
    ms = ModelSet.load(a.weights_dir)
    restorer = Restorer(ms)
    gts, ys = prepare(a.clean_dir, ms, a.faces, a.seed)
    base = RestoreOptions.for_models(ms, steps=method_steps(ms, "dynface"), seed=a.seed)
    settings = []
    if not a.skip_full:
        settings.append(("full chain (every step from t*)", replace(base, steps=1000), a.full_faces))
    for steps in (100, 50, 35, 25, 10):
        settings.append((f"{steps} steps, eta 1", replace(base, steps=steps), a.faces))
    for steps in (50, 25):
        settings.append((f"{steps} steps, DDIM eta 0", replace(base, steps=steps, eta=0.0), a.faces))
    settings.append(("50 steps, guide every 2nd", replace(base, steps=50, guide_every=2), a.faces))
    rows = []
    feats_gt = inception_features(gts)
    for name, opt, n in settings:
        r = run_setting(restorer, ys[:n], gts[:n], opt)
        f = inception_features(r.pop("outs"))
        r["kid"] = float(kid_from_features(f, feats_gt[:n], paired=True)) if n > 1 else None
        r.update(setting=name, faces=n)
        rows.append(r)
        print(f"{name}: {r['nfe']} NFE, {r['sec_median']:.1f} s/face, PSNR {r['psnr']:.2f}", file=sys.stderr)
    wins = []
    default = replace(base)
    auto = resolve_precision("auto", ms.device)
    variants = [(f"default (precision auto = {auto})", default, {}),
                ("fp32", replace(default, precision="fp32"), {}),
                ("channels_last", replace(default, channels_last=True), {}),
                ("batch of faces in one call", default, {"batch": True})]
    if native_bf16(ms.device):
        variants.insert(2, ("bf16", replace(default, precision="bf16"), {}))
    for name, opt, kw in variants:
        r = run_setting(restorer, ys, gts, opt, **kw)
        r.pop("outs")
        r.update(setting=name, sec_per_step=r["sec_median"] / max(1.0, r["nfe"]))
        wins.append(r)
    if not native_bf16(ms.device):  # emulated bf16: one face, a few steps, reported per step
        r = run_setting(restorer, ys[:1], gts[:1], replace(default, precision="bf16", steps=a.slow_steps))
        r.pop("outs")
        r.update(setting=f"bf16 (emulated here; 1 face, {a.slow_steps} steps)", sec_per_step=r["sec_median"] / max(1.0, r["nfe"]))
        wins.append(r)
    other = 1 if a.threads > 1 else 2
    torch.set_num_threads(other)
    r = run_setting(restorer, ys, gts, default)
    r.pop("outs")
    r.update(setting=f"{other} thread(s) instead of {a.threads}", sec_per_step=r["sec_median"] / max(1.0, r["nfe"]))
    wins.append(r)
    torch.set_num_threads(a.threads)
    out = Path(a.output)
    write_bytes_atomic(out / "speed.json", json.dumps({"rows": rows, "cheap_wins": wins}, indent=1).encode())
    md = format_md(rows, wins, ms, base.steps)
    write_bytes_atomic(out / "speed.md", md.encode())
    print(md)


def format_md(rows, wins, ms, default_steps: int = 25) -> str:
    full = rows[0] if rows and rows[0]["setting"].startswith("full") else None
    lines = [*machine_header(), f"Model set: {ms.describe()}", "",
             "| setting | faces | NFE | s/face median (min–max) | PSNR | ΔPSNR vs full (same faces) | ID cos | KID×1000 "
             "| ΔKID vs full | in networks |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        st = r["stage_seconds"]
        net = sum(v for k, v in st.items() if k in ("rm", "se", "sample_unet_forward", "sample_backward", "sample_dgsa"))
        share = net / st["total"] if st.get("total") else float("nan")
        k = len(full["psnr_per_face"]) if full else 0  # compare on the faces the full chain ran on
        d = f"{np.mean(r['psnr_per_face'][:k]) - np.mean(full['psnr_per_face']):+.2f}" if full else "–"
        kid = "–" if r["kid"] is None else f"{r['kid'] * 1000:.1f}"
        dk = "–"
        if full and full.get("kid") and r["kid"] is not None and r["faces"] == full["faces"]:
            dk = f"{(r['kid'] / full['kid'] - 1):+.0%}"
        lines.append(f"| {r['setting']} | {r['faces']} | {r['nfe']} | {r['sec_median']:.1f} ({r['sec_min']:.1f}–{r['sec_max']:.1f}) "
                     f"| {r['psnr']:.2f} | {d} | {r['id_cos']:.3f} | {kid} | {dk} | {share:.0%} |")
    lines += ["", f"Per-stage seconds per face (default setting, {default_steps} steps):", "",
              "| stage | seconds |", "|---|---|"]
    dflt = next((r for r in rows if r["setting"].startswith(f"{default_steps} steps, eta 1")), rows[-1])
    for k, v in dflt["stage_seconds"].items():
        lines.append(f"| {k} | {v:.2f} |")
    lines += ["", "Cheap wins on the default setting:", "", "| variant | s/face median | s per network step | PSNR |",
              "|---|---|---|---|"]
    for r in wins:
        lines.append(f"| {r['setting']} | {r['sec_median']:.2f} | {r['sec_per_step']:.3f} | {r['psnr']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
