#!/usr/bin/env python
"""Derive the UTKFace 5-point alignment template (the numbers stored in dynface/face/templates.py).

UTKFace "aligned & cropped" images are 200x200 and already aligned, so the template is simply
the mean of the detector's 5 landmarks over a deterministic sample of them (evenly spaced in the
sorted file list, which is sorted by age, so all ages are covered).  An image counts only if
the detector finds exactly one face with score >= --min-score whose box centre is within 50 px
of the image centre; landmarks farther than 4 robust standard deviations (median/MAD per
coordinate) from the median are dropped as outliers before averaging.

The embedded model consumes UTKFace images resized 200 -> 128 (full image, no crop), so the
template for an S x S crop is mean_200 * S / 200 (templates.template_for("utkface", S)).

Also, with --check-ffhq DIR, averages the detector's landmarks on FFHQ-aligned 512 crops
(e.g. ../shared/data/val/real) and compares them with facexlib's FFHQ-512 template.

    python scripts/make_utk_template.py --data ../shared/data/utkface -n 400 \
        --check-ffhq ../shared/data/val/real
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _mean_points(paths, expect_size, min_score, center_tol, check_size=True):
    from dynface.core.imageio import read_rgb
    from dynface.face.detect import detect_faces

    pts, used, rejected = [], [], {"size": 0, "faces!=1": 0, "off-centre": 0}
    for p in paths:
        rgb = read_rgb(p)
        if check_size and rgb.shape[:2] != (expect_size, expect_size):
            rejected["size"] += 1
            continue
        faces = detect_faces(rgb, min_score=min_score)
        if len(faces) != 1:
            rejected["faces!=1"] += 1
            continue
        f = faces[0]
        if np.hypot(*(f.center - np.array([rgb.shape[1], rgb.shape[0]]) / 2)) > center_tol:
            rejected["off-centre"] += 1
            continue
        pts.append(f.landmarks)
        used.append(p)
    pts = np.stack(pts)  # (N, 5, 2)
    med = np.median(pts, axis=0)
    mad = np.median(np.abs(pts - med), axis=0) * 1.4826
    ok = np.all(np.abs(pts - med) <= 4 * np.maximum(mad, 1e-6), axis=(1, 2))
    rejected["outlier"] = int((~ok).sum())
    return pts[ok].mean(axis=0), pts[ok].std(axis=0), int(ok.sum()), rejected


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/utkface", help="UTKFace aligned&cropped folder")
    ap.add_argument("-n", type=int, default=400, help="how many images to sample (evenly spaced)")
    ap.add_argument("--size", type=int, default=128, help="model input size (the template is scaled to it)")
    ap.add_argument("--min-score", type=float, default=0.9)
    ap.add_argument("--check-ffhq", default=None, help="folder of FFHQ-aligned 512 crops to compare with facexlib")
    args = ap.parse_args(argv)

    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)

    files = sorted(Path(args.data).glob("*.jpg"))
    if not files:
        print(f"no .jpg files in {args.data}", file=sys.stderr)
        return 2
    idx = np.linspace(0, len(files) - 1, num=min(args.n, len(files))).round().astype(int)
    sample = [files[i] for i in idx]
    t0 = time.time()
    mean, std, n, rej = _mean_points(sample, 200, args.min_score, center_tol=50)
    print(f"UTKFace: {n} of {len(sample)} sampled images used (of {len(files)}), rejected {rej}, {time.time() - t0:.1f}s")
    print("per-point std (px @200):", np.round(std, 2).tolist())
    print("UTKFACE_200 = np.array([")
    for x, y in mean:
        print(f"    [{x:.4f}, {y:.4f}],")
    print("])")
    print(f"at {args.size}x{args.size}:", np.round(mean * args.size / 200, 3).tolist())

    if args.check_ffhq:
        from dynface.face.templates import FFHQ_512

        crops = sorted(p for p in Path(args.check_ffhq).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
        m, s, n2, rej2 = _mean_points(crops, 512, args.min_score, center_tol=80)
        print(f"FFHQ check: {n2} of {len(crops)} crops used, rejected {rej2}")
        print("detected mean @512:", np.round(m, 2).tolist())
        print("facexlib template :", FFHQ_512.round(2).tolist())
        print("difference (px)   :", np.round(m - FFHQ_512, 2).tolist())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
