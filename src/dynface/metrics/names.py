"""The metrics `dynface eval` knows and which of them can run: names, groups, aliases, and the
ones that need weights this project cannot ship (reported as skipped, never substituted)."""
from __future__ import annotations

import re

FULL_REF_METRICS = ("psnr", "ssim", "id", "lmd")
NO_REF_METRICS = ("niqe", "brisque")
SET_METRICS = ("fid", "kid")
ALL_METRICS = FULL_REF_METRICS + NO_REF_METRICS + SET_METRICS

# per-image numeric columns, in report order
NUMERIC_COLUMNS = ("psnr", "ssim", "id_cos", "id_dist", "lmd", "niqe", "brisque")

UNAVAILABLE = {
    "lpips": "LPIPS unavailable: needs pretrained AlexNet/VGG + LPIPS linear weights, not shipped offline",
    "dists": "DISTS unavailable: needs pretrained VGG + DISTS weights, not shipped offline",
    "arcface": "ArcFace unavailable: no ArcFace weights offline; use 'id' (dlib 128-D) instead",
}


def normalise_metrics(metrics) -> list[str]:
    """A metric list (iterable or comma/space string; None = all) in canonical names, without repeats."""
    if metrics is None:
        return list(ALL_METRICS)
    if isinstance(metrics, str):
        metrics = [m for m in re.split(r"[,\s]+", metrics) if m]
    out = []
    for m in metrics:
        m = m.lower().strip()
        m = {"id_dlib": "id", "identity": "id", "lpips": "lpips", "dists": "dists", "arcface": "arcface"}.get(m, m)
        if m not in out:
            out.append(m)
    return out


def unknown_metrics(metrics) -> list[str]:
    """The names in `metrics` that are no metric at all (not even a known-unavailable one)."""
    return [m for m in (normalise_metrics(metrics) if metrics else []) if m not in ALL_METRICS and m not in UNAVAILABLE]
