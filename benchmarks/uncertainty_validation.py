"""Does the --samples K std map mean something? Synthetic faces with a known, spatially uneven degradation.

Each clean val face is aligned to the model's template (the bench protocol) and degraded twice with
`docs/method.md` §1 at fixed parameters: HEAVY on one half of the face (left for even faces, right for odd),
LIGHT on the other, joined by a 12-px ramp. K posterior samples are drawn in one batch (seed 0) and

  * the per-pixel std (RMS over channels, [0, 1] intensities) is correlated with the per-pixel
    absolute error of the restoration (sample 0, what `restore` writes) against the ground truth:
    Pearson and Spearman over all pixels of all faces, and per face;
  * the mean std of the heavily degraded half is compared with that of the lightly degraded half
    (the 12-px ramp and a 4-px image border are left out of both).

    python benchmarks/uncertainty_validation.py ../shared/data/london -o docs/uncertainty \
        --faces 4 --samples 4 --steps 10 --threads 1
Writes `validation.png` (faces | binned error against std) and `validation.json`. The committed
figure shows London Set faces (CC BY 4.0, docs/figures.md); figures of the research-only sets
(`val/clean`) are for looking locally.
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch

from dynface.core.degradation import DegradationParams, degrade, make_rng
from dynface.core.hardware import set_threads
from dynface.core.imageio import list_images, to_tensor, to_uint8, write_bytes_atomic
from dynface.core.uncertainty import STD_VMAX, colorize, pixel_std
from dynface.face.templates import template_for
from dynface.jobs.ablation import aligned_ground_truth
from dynface.jobs.batch import stable_index
from dynface.modelset.folder import ModelSet
from dynface.pipeline import Restorer, RestoreOptions

HEAVY = DegradationParams(sigma=2.5, scale=4.0, noise=12.0, jpeg=40)   # 128^2 units (design.md)
LIGHT = DegradationParams(sigma=0.3, scale=1.2, noise=2.0, jpeg=90)
RAMP = 12


def half_mask(size: int, heavy_left: bool) -> torch.Tensor:
    """(1, 1, S, S) weight of the heavy degradation: 1 on one half, 0 on the other, linear ramp between."""
    x = torch.arange(size, dtype=torch.float32)
    m = ((size / 2 + RAMP / 2 - x) / RAMP).clamp(0, 1)
    m = m if heavy_left else m.flip(0)
    return m[None, None, None, :].expand(1, 1, size, size)


def ranks(a: np.ndarray) -> np.ndarray:
    r = np.empty(len(a))
    r[np.argsort(a, kind="stable")] = np.arange(len(a))
    return r


def corr(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    return float(np.corrcoef(a, b)[0, 1]), float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clean_dir")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--faces", type=int, default=6)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None, help="default: the model set's")
    a = ap.parse_args()
    set_threads(a.threads)
    ms = ModelSet.load()
    r = Restorer(ms)
    s = ms.size
    tmpl = template_for(ms.manifest.get("template", "utkface"), s)
    files = list_images([a.clean_dir])[: a.faces]
    gts, ys, masks = [], [], []
    for i, f in enumerate(files):
        gt = to_tensor(aligned_ground_truth(f, tmpl, s))
        rng = make_rng(a.seed, stable_index(f.name))
        heavy, light = degrade(gt, HEAVY, rng), degrade(gt, LIGHT, rng)
        m = half_mask(s, heavy_left=i % 2 == 0)
        gts.append(gt)
        ys.append(m * heavy + (1 - m) * light)
        masks.append(m[0, 0])
    gt, y = torch.cat(gts), torch.cat(ys)
    t0 = time.perf_counter()
    res = r.restore(y, RestoreOptions.for_models(ms, steps=a.steps, seed=a.seed, samples=a.samples, precision="auto"))
    secs = time.perf_counter() - t0
    std = pixel_std(res.samples).numpy()                                   # (B, S, S)
    err = ((res.images - gt) / 2).abs().mean(1).numpy()                    # (B, S, S), [0, 1] units
    err_mean = ((res.samples.mean(0) - gt) / 2).abs().mean(1).numpy()
    b = 4
    inner = np.zeros((s, s), bool)
    inner[b:-b, b:-b] = True
    per_face, heavy_std, light_std = [], [], []
    for i in range(len(files)):
        m = masks[i].numpy()
        hv, lt = inner & (m >= 1), inner & (m <= 0)
        heavy_std.append(float(std[i][hv].mean()))
        light_std.append(float(std[i][lt].mean()))
        pr, sp = corr(std[i].ravel(), err[i].ravel())
        per_face.append({"face": files[i].stem, "pearson": pr, "spearman": sp, "heavy_std": heavy_std[-1],
                         "light_std": light_std[-1], "heavy_err": float(err[i][hv].mean()),
                         "light_err": float(err[i][lt].mean()), "t_start": int(res.t_start[i])})
    pr, sp = corr(std.ravel(), err.ravel())
    prm, spm = corr(std.ravel(), err_mean.ravel())
    summary = {"faces": len(files), "samples": a.samples, "seed": a.seed, "heavy": HEAVY.to_dict(),
               "light": LIGHT.to_dict(), "pearson": pr, "spearman": sp, "pearson_vs_mean_error": prm,
               "spearman_vs_mean_error": spm, "heavy_std_mean": float(np.mean(heavy_std)),
               "light_std_mean": float(np.mean(light_std)),
               "faces_heavy_std_higher": int(sum(h > l for h, l in zip(heavy_std, light_std))),
               "seconds": secs, "per_face": per_face}
    out = Path(a.output)
    write_bytes_atomic(out / "validation.json", json.dumps(summary, indent=1).encode())
    figure(gt, y, res.images, std, err, summary, out / "validation.png")
    print(json.dumps({k: v for k, v in summary.items() if k != "per_face"}, indent=1))


def figure(gt, y, restored, std, err, summary, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(4, len(gt))
    fig = plt.figure(figsize=(13, 2.6 * n))
    cols = ["ground truth", "input (heavy | light halves)", "restored (sample 0)", "std of K samples", "|error|"]
    for i in range(n):
        imgs = [to_uint8(gt[i]), to_uint8(y[i]), to_uint8(restored[i]), colorize(std[i]), colorize(err[i], 2 * STD_VMAX)]
        for j, im in enumerate(imgs):
            ax = fig.add_subplot(n, 6, i * 6 + j + 1)
            ax.imshow(im)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=9)
    ax = fig.add_subplot(1, 6, 6)
    sv, ev = std.ravel(), err.ravel()
    edges = np.quantile(sv, np.linspace(0, 1, 11))
    idx = np.clip(np.searchsorted(edges, sv, side="right") - 1, 0, 9)
    ax.plot([sv[idx == k].mean() for k in range(10)], [ev[idx == k].mean() for k in range(10)], "o-")
    ax.set_xlabel("std (decile means)")
    ax.set_ylabel("mean |error|")
    ax.set_title(f"Pearson {summary['pearson']:.2f}, Spearman {summary['spearman']:.2f}\n"
                 f"std heavy half {summary['heavy_std_mean']:.3f} vs light {summary['light_std_mean']:.3f}",
                 fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle(f"--samples {summary['samples']}: per-pixel std against per-pixel error "
                 f"({summary['faces']} synthetic faces; heat maps 0..{STD_VMAX:g} std, 0..{2 * STD_VMAX:g} error)",
                 fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


if __name__ == "__main__":
    main()
