"""Training throughput per model on this machine: seconds per iteration and images/s.

    python benchmarks/train_throughput.py --iters 4 -o docs/history/training [--kinds rm]

For each kind (RM, prior, IDM, SE; DGSA needs a full run folder and is left out) it times
`--iters` iterations (after one warm-up) of the real loss, backward and AdamW step from the
packaged config, on the cached UTKFace faces, under each variant: fp32 vs bf16 (bf16 only where
the CPU runs it natively: elsewhere it is 70-90x slower, see CPU-BUDGET.md), 1 vs 2 threads, RM on
64^2 crops of the degraded faces (batch x4), channels_last batches (config `channels_last`, as the
training loop does it), and the RM's detail losses. Weights are random (speed does not depend on them).
Writes `throughput.md` with the CPU model beside the numbers.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from dynface.core.hardware import autocast, native_bf16, set_threads
from dynface.core.hardware import machine_header
from dynface.core.imageio import write_bytes_atomic
from dynface.core.schedule import Schedule
from dynface.training import data as data_mod
from dynface.training.batches import Ctx
from dynface.training.loop import build_adversary, build_trainable, load_config, load_frozen
from dynface.training.losses import LOSSES

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "dynface" / "configs"


def time_kind(kind: str, cfg: dict, images, iters: int, precision: str, channels_last: bool = False) -> dict:
    model = build_trainable(kind, cfg, init=False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batcher = data_mod.Batcher(images, 0)
    ctx = Ctx(cfg=cfg, batcher=batcher, schedule=Schedule.linear(), frozen=load_frozen(kind, cfg),
              adversary=build_adversary(kind, cfg), channels_last=channels_last)
    secs = []
    for i in range(iters + 1):
        ctx.step = 10_000 + i  # past any stage-1 phase
        before = batcher.drawn
        t0 = time.perf_counter()
        with autocast("cpu", precision):
            loss = LOSSES[kind](model, ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first iteration warms up
            secs.append((time.perf_counter() - t0, batcher.drawn - before))
    s = statistics.median(t for t, _ in secs)
    imgs = statistics.median(n for _, n in secs)
    return {"sec_per_iter": s, "images_per_iter": imgs, "images_per_s": imgs / s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--cache-dir", default="/work/runs/cache")
    ap.add_argument("--data", default="../shared/data/utkface")
    ap.add_argument("--kinds", default="rm,prior,idm,se", help="comma-separated subset of rm,prior,idm,se")
    ap.add_argument("-o", "--output", default="docs/history/training")
    a = ap.parse_args(argv)
    precisions = ["fp32"] + (["bf16"] if native_bf16("cpu") else [])
    rows = []
    kinds = (("rm", "rm.yaml"), ("prior", "prior.yaml"), ("idm", "idm.yaml"), ("se", "se_finetune.yaml"))
    wanted = a.kinds.split(",")
    if unknown := set(wanted) - {k for k, _ in kinds}:
        ap.error(f"--kinds: unknown {', '.join(sorted(unknown))}")
    for kind, cfg_name in (k for k in kinds if k[0] in wanted):
        cfg = {**load_config(CONFIGS / cfg_name), "data": a.data}
        images = data_mod.load_cache(cfg["data"], cfg["size"], "train", cache_dir=a.cache_dir)
        variants = [(f"{p}, {t} thread(s)", p, t, cfg, False) for p in precisions for t in (1, 2)]
        variants.append((f"{precisions[-1]}, 2 threads, channels_last", precisions[-1], 2, cfg, True))
        if kind == "rm":  # a random 64² window of each degraded 128² face, 4x the faces per batch
            crop = {**cfg, "batch": cfg["batch"] * 4, "crop": 64}
            variants.append(("fp32, 2 threads, 64² crops (batch x4)", "fp32", 2, crop, False))
            if precisions[-1] != "fp32":
                variants.append(("fp32, 2 threads, channels_last", "fp32", 2, cfg, True))
            detail = {**cfg, "feature_weight": 0.05, "gan": {"weight": 0.01}}
            variants.append(("fp32, 2 threads, L1 + Inception feature + PatchGAN", "fp32", 2, detail, False))
            variants.append(("fp32, 1 thread, L1 + Inception feature + PatchGAN", "fp32", 1, detail, False))
            deep = {**detail, "arch": {**cfg["arch"], "blocks": 4}}  # the campaign's rm_deep recipe
            for p in precisions:
                for cl in (False, True):
                    variants.append((f"{p}, 2 threads, rm_deep (4 blocks, feature + PatchGAN)"
                                     + (", channels_last" if cl else ""), p, 2, deep, cl))
        for name, prec, threads, c, cl in variants:
            set_threads(threads)
            r = time_kind(kind, c, images, a.iters, prec, cl)
            r.update(kind=kind, variant=name)
            rows.append(r)
            print(f"{kind:6s} {name:40s} {r['sec_per_iter']:.2f} s/it  {r['images_per_s']:.2f} img/s", file=sys.stderr)
    lines = [*machine_header(), f"{a.iters} timed iterations per row (median), after one warm-up.", "",
             "| model | variant | s / iteration | images / iteration | images / s |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['variant']} | {r['sec_per_iter']:.2f} | {r['images_per_iter']:.0f} "
                     f"| {r['images_per_s']:.2f} |")
    if "bf16" not in precisions:
        lines += ["", "bf16 is not timed: this CPU has no native bf16 (avx512_bf16/amx_bf16), where bf16 autocast "
                      "trains ~70x slower than fp32 (CPU-BUDGET.md: RM batch of 8 at 128², 150 s vs 2.2 s)."]
    md = "\n".join(lines) + "\n"
    out = Path(a.output)
    write_bytes_atomic(out / "throughput.md", md.encode())
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
