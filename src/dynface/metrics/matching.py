"""Which ground truth a restored file is compared with: matching by file stem, and resizing a ground
truth of the same aspect ratio to the restored size (the rules: `metrics/evaluate.py`)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

_SUFFIX = re.compile(r"^(.+)_\d+$")


def match_files(restored: list[Path], gt: list[Path]) -> dict[Path, tuple[Path | None, str]]:
    """Map each restored path to (ground-truth path or None, rule); see the module docstring."""
    by_stem: dict[str, Path] = {}
    for g in sorted(gt):
        by_stem.setdefault(g.stem, g)
    stems_longest_first = sorted(by_stem, key=len, reverse=True)
    out: dict[Path, tuple[Path | None, str]] = {}
    for r in restored:
        s = r.stem
        if s in by_stem:
            out[r] = (by_stem[s], "exact")
            continue
        m = _SUFFIX.match(s)
        if m and m.group(1) in by_stem:
            out[r] = (by_stem[m.group(1)], "suffix")
            continue
        hit = next((g for g in stems_longest_first if s.startswith(g + "_")), None)
        out[r] = (by_stem[hit], "prefix") if hit else (None, "none")
    return out


def resize_to(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((hw[1], hw[0]), Image.BICUBIC), dtype=np.uint8)


def same_aspect(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return abs(a[0] / a[1] - b[0] / b[1]) <= 0.01 * (b[0] / b[1])
