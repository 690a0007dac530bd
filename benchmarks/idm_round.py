"""IDM extrinsic enhancement, one small round (issue 6), measured against a control.

    python benchmarks/idm_round.py --base-run RUNS/idm --cleaned CLEANED --iters N -o docs/idm_round.md

Starting from the same IDM checkpoint, fine-tune N more iterations (a) on the cleaned training
faces (`dynface clean`) and (b) on the original faces (control), then restore the same degraded
validation faces (UTKFace val split, seed 0) with both and with the starting model.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch

from dynface.checkpoint import load_network
from dynface.data import split_files
from dynface.degradation import DegradationConfig, degrade_random
from dynface.imageio import read_rgb, resize, to_tensor, to_uint8, write_bytes_atomic
from dynface.metrics.fidelity import psnr, ssim
from dynface.sampler import SampleStats, SamplerConfig, sample_guided
from dynface.schedule import Schedule, space_timesteps
from dynface.training import load_config, train

DEG = {"sigma": [0.025, 3.75], "scale": [0.2, 8.0], "noise": [0.0, 20.0], "jpeg": [30, 100]}


def restore_idm(net, y, steps, seed):
    s = Schedule.linear()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(y.shape, generator=gen)
    out, _ = sample_guided(net, x, space_timesteps(1000, steps), s, None, SamplerConfig(zeta=0.0, bf16=True), None,
                           gen, SampleStats(), cond=y)
    return out.clamp(-1, 1)


def measure(path, x, y, steps):
    net = load_network(path)
    out = restore_idm(net, y, steps, 0)
    a = [to_uint8(o) for o in out]
    g = [to_uint8(t) for t in x]
    return float(np.mean([psnr(p, q) for p, q in zip(a, g)])), float(np.mean([ssim(p, q) for p, q in zip(a, g)]))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-run", required=True)
    ap.add_argument("--cleaned", required=True)
    ap.add_argument("--data", default="../shared/data/utkface")
    ap.add_argument("--iters", type=int, default=40, help="extra iterations for both arms")
    ap.add_argument("--faces", type=int, default=16)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--work", default="runs/idm_round")
    ap.add_argument("--cache-dir", default="runs/cache")
    ap.add_argument("-o", "--output", default="docs/idm_round.md")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    base = Path(a.base_run)
    cfg = load_config(base / "config.yaml")
    cfg["cache_dir"] = a.cache_dir
    start = int(torch.load(base / "ckpt.pt", map_location="cpu", weights_only=True)["step"])
    arms = {}
    for name, data in (("cleaned", a.cleaned), ("control", a.data)):
        run = Path(a.work) / name
        if not (run / "ckpt.pt").exists():
            run.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(base / "ckpt.pt", run / "ckpt.pt")
        arms[name] = train("idm", cfg, run_dir=run, resume=True, data=data, iters=start + a.iters, threads=2)
    files = split_files(a.data, "val")[: a.faces]
    x = torch.cat([resize(to_tensor(read_rgb(f)), 128) for f in files])
    dcfg = DegradationConfig.from_dict(DEG)
    y = torch.cat([degrade_random(x[i:i + 1], dcfg, 0, i)[0] for i in range(len(files))])
    rows = [("start", start, *measure(base / "final.safetensors", x, y, a.steps))]
    for name, path in arms.items():
        rows.append((f"+{a.iters} it on {name} data", start + a.iters, *measure(path, x, y, a.steps)))
    md = ["| IDM | iterations | PSNR | SSIM |", "|---|---|---|---|"]
    md += [f"| {n} | {it} | {p:.2f} | {s:.3f} |" for n, it, p, s in rows]
    text = (f"IDM extrinsic round: {len(files)} UTKFace val faces, degradation seed 0, {a.steps} sampling steps.\n\n"
            + "\n".join(md) + "\n")
    write_bytes_atomic(a.output, text.encode())
    print(text)


if __name__ == "__main__":
    main()
