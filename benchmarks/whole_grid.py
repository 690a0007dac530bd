"""Before/after grid for whole photos: run after

    dynface restore -i ../shared/data/whole -o out/whole
    python benchmarks/whole_grid.py ../shared/data/whole out/whole -o out/whole_grid.png

Each row: the input photo | the final result (faces restored and pasted back), at a fixed height.
For looking on your own machine: the photos of `whole/` are research-only, so their grid stays out
of the repository (`out/` is ignored; docs/figures.md lists what is committed and why).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from dynface.core.imageio import list_images, read_rgb, write_image


def row(a: np.ndarray, b: np.ndarray, height: int) -> np.ndarray:
    def fit(x):
        w = max(1, round(x.shape[1] * height / x.shape[0]))
        return cv2.resize(x, (w, height), interpolation=cv2.INTER_AREA)

    gap = np.full((height, 6, 3), 255, np.uint8)
    return np.concatenate([fit(a), gap, fit(b)], 1)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs")
    ap.add_argument("results", help="the -o folder of dynface restore")
    ap.add_argument("-o", "--output", default="out/whole_grid.png")
    ap.add_argument("--names", default=None, help="comma list of stems (default: first 6 with faces)")
    ap.add_argument("--height", type=int, default=220)
    a = ap.parse_args(argv)
    res = Path(a.results) / "final_results"
    pairs = []
    want = a.names.split(",") if a.names else None
    for f in list_images([a.inputs]):
        if want and f.stem not in want:
            continue
        outs = sorted(res.glob(f"{f.stem}.*")) or sorted(res.glob(f"{f.stem}_*.*"))
        if not outs:
            continue
        faces = list((Path(a.results) / "restored_faces").glob(f"{f.stem}_*"))
        if not want and not faces:
            continue
        pairs.append((read_rgb(f), read_rgb(outs[0])))
        if not want and len(pairs) == 6:
            break
    rows = [row(x, y, a.height) for x, y in pairs]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    write_image(a.output, np.concatenate(rows, 0))
    print(a.output)


if __name__ == "__main__":
    main()
