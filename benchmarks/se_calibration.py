"""How well does SE (TM + SDE) predict the blur level sigma* of the shipped RM? (`docs/method.md` §3, Eq. 10/19)

    python benchmarks/se_calibration.py --se OLD_DIR NEW_DIR -o docs/se_calibration.md

For UTKFace validation faces degraded with seed 0 (the model set's degradation ranges), the label
sigma* (Eq. 19) is computed from the clean face and the model set's RM output; each SE (a folder
holding tm.safetensors and sde.safetensors) predicts sigma_hat from the degraded face alone.
Reports mean absolute error, mean signed error (sigma_hat - sigma*, > 0: too much blur) and the
correlation. SE is trained to predict the label of the RM it is used with, so an SE trained against
an older RM snapshot shows up here as a bias.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dynface.core.dblm import estimate_sigma
from dynface.core.degradation import DegradationConfig, degrade_random
from dynface.core.hardware import set_threads
from dynface.core.imageio import read_rgb, resize, to_tensor, write_bytes_atomic
from dynface.core.sigma_label import sigma_grid, sigma_star
from dynface.modelset.checkpoint import load_network
from dynface.modelset.folder import ModelSet
from dynface.pipeline import Restorer, RestoreOptions
from dynface.training.data import split_files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--se", nargs="+", required=True, help="folders with tm.safetensors + sde.safetensors")
    ap.add_argument("--data", default="../shared/data/utkface")
    ap.add_argument("--faces", type=int, default=64)
    ap.add_argument("--eps", type=float, default=0.025, help="Eq. 19 tolerance (the SE configs' eps)")
    ap.add_argument("--threads", type=int, default=None, help="default: the physical cores available")
    ap.add_argument("--weights-dir", default=None,
                    help="the model set whose RM labels sigma* (default: the embedded one), e.g. a candidate RM's")
    ap.add_argument("-o", "--output", default="docs/se_calibration.md")
    a = ap.parse_args(argv)
    a.threads = set_threads(a.threads)
    ms = ModelSet.load(a.weights_dir)
    g = ms.manifest["sigma_grid"]
    grid = sigma_grid(g[0], g[1], int(g[2]))
    files = split_files(a.data, "val")[: a.faces]
    x = torch.cat([resize(to_tensor(read_rgb(f)), ms.size) for f in files])
    dcfg = DegradationConfig.from_dict(ms.manifest.get("degradation"))
    y = torch.cat([degrade_random(x[i:i + 1], dcfg, 0, i)[0] for i in range(len(files))])
    with torch.no_grad():
        r = Restorer(ms).rm(y, RestoreOptions(method="rm"))
        label = sigma_star(x, r, grid, a.eps)
    rows = []
    for d in a.se:
        d = Path(d)
        tm, sde = load_network(d / "tm.safetensors", "tm"), load_network(d / "sde.safetensors", "sde")
        with torch.no_grad():
            est = estimate_sigma(tm, sde, y).clamp(g[0], g[1])
        err = (est - label).numpy()
        corr = float(np.corrcoef(est.numpy(), label.numpy())[0, 1]) if label.std() > 0 else float("nan")
        rows.append((str(d), float(np.abs(err).mean()), float(err.mean()), corr, float(est.mean())))
    md = [f"SE calibration: {len(files)} UTKFace validation faces, degradation seed 0, σ* (Eq. 19, ε = {a.eps}) "
          f"from the RM of {a.weights_dir or 'the embedded set'} ({ms.manifest['files']['rm'].get('iters', '?')} it); "
          f"mean σ* = {float(label.mean()):.3f}.", "",
          "| SE | MAE(σ̂, σ*) | mean σ̂ − σ* | corr | mean σ̂ |", "|---|---|---|---|---|"]
    md += [f"| {n} | {m:.3f} | {b:+.3f} | {c:.3f} | {s:.3f} |" for n, m, b, c, s in rows]
    text = "\n".join(md) + "\n"
    write_bytes_atomic(a.output, text.encode())
    print(text)


if __name__ == "__main__":
    main()
