"""How much fine detail the training faces have next to the bench's ground truths.

    python benchmarks/data_sharpness.py --cache-dir /work/runs/cache -o docs/history/training

Detail energy = mean |Laplacian| of the grey image in [0, 1] (core/imagemetrics.detail_energy,
the numerator of the bench's detail ratio), at the model size (128^2): for every UTKFace training
face, and for the 29 `val/clean` faces aligned to the same template as `dynface bench` does.
A restorer that reproduces its training targets exactly scores about (training energy / bench
energy) on the bench's detail ratio, so this bounds what the data can teach. Writes
`data_sharpness.md` (quantile table), `data_sharpness.png` (histograms) and
`data_sharpness_faces.jpg` (8 random training faces from each band of sharpness, sharpest first).
The face sheet is for looking locally: UTKFace is research-only, so `.gitignore` keeps it out
of the repository (docs/figures.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from dynface.core.atomic import write_atomic
from dynface.core.hardware import machine_header
from dynface.core.imageio import list_images, to_tensor, write_bytes_atomic, write_image
from dynface.core.imagemetrics import detail_energy
from dynface.face.templates import template_for
from dynface.jobs.ablation import aligned_ground_truth
from dynface.training import data as data_mod

BANDS = ((0.0, 0.05), (0.05, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))  # by rank, sharpest first


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/utkface")
    ap.add_argument("--bench", default="../shared/data/val/clean")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--cache-dir", default="runs/cache")
    ap.add_argument("-o", "--output", default="docs/history/training")
    a = ap.parse_args(argv)
    out = Path(a.output)
    train = data_mod.load_cache(a.data, a.size, "train", cache_dir=a.cache_dir)
    e_train = data_mod.detail_energies(train)
    tpl = template_for("utkface", a.size)
    gts = [aligned_ground_truth(f, tpl, a.size) for f in list_images([a.bench])]
    e_bench = detail_energy(torch.cat([to_tensor(g) for g in gts]))
    half = e_train.sort(descending=True).values[: len(e_train) // 2]
    qs = (0.1, 0.25, 0.5, 0.75, 0.9)
    rows = [("UTKFace train, all", e_train), ("UTKFace train, sharpest half", half), ("bench ground truths", e_bench)]
    lines = [*machine_header()[:1], "", f"Detail energy (mean |Laplacian| of the grey image in [0, 1]) at {a.size}^2.", "",
             "| faces | n | mean | " + " | ".join(f"q{int(q * 100)}" for q in qs) + " | mean / bench mean |",
             "|---|---|---|" + "---|" * len(qs) + "---|"]
    for name, e in rows:
        lines.append(f"| {name} | {len(e)} | {float(e.mean()):.4f} | "
                     + " | ".join(f"{float(e.quantile(q)):.4f}" for q in qs)
                     + f" | {float(e.mean() / e_bench.mean()):.2f} |")
    frac = float((e_train >= e_bench.median()).float().mean())
    lines += ["", f"Training faces at least as sharp as the median bench face: {frac:.1%}."]
    text = "\n".join(lines) + "\n"
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "data_sharpness.md", text.encode())

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(0, float(max(e_train.quantile(0.995), e_bench.max())), 60)
    ax.hist(e_train.numpy(), bins=bins, density=True, alpha=0.6, label=f"UTKFace train ({len(e_train)})")
    ax.hist(e_bench.numpy(), bins=bins, density=True, alpha=0.6, label=f"bench ground truths ({len(e_bench)})")
    ax.axvline(float(e_train.median()), color="C0", ls="--", lw=1, label="train median (the sharpest-half cut)")
    ax.set_xlabel("detail energy (mean |Laplacian|)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(out / "data_sharpness.png", lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)

    order = torch.argsort(e_train, descending=True)
    gen = torch.Generator().manual_seed(0)
    rows_img = []
    for lo, hi in BANDS:
        band = order[int(lo * len(order)):int(hi * len(order))]
        pick = band[torch.randperm(len(band), generator=gen)[:8]]
        rows_img.append(np.concatenate([train[i].permute(1, 2, 0).numpy() for i in pick], 1))
    write_image(out / "data_sharpness_faces.jpg", np.concatenate(rows_img, 0))
    print(f"wrote {out}/data_sharpness.md, data_sharpness.png, data_sharpness_faces.jpg", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
