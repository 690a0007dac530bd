"""Is a candidate's PSNR gain on the 29-face bench more than noise? Paired per-face differences.

    python benchmarks/paired_psnr.py BASE_DIR CANDIDATE_DIR [-o table.md]

BASE_DIR and CANDIDATE_DIR are two `dynface bench` output folders over the same faces and seed
(e.g. `campaign.py bench NAME` writes OUT/shipped and OUT/NAME): each holds gt/ and one folder of
restored faces per setting. For every setting both hold, prints the mean of PSNR(candidate) −
PSNR(base) over the faces, its standard error and on how many faces the candidate is better: the
bench's table gives only means, and a 0.05 dB mean over 29 faces can be one face.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dynface.core.imageio import read_rgb, write_bytes_atomic
from dynface.metrics.fidelity import psnr


def paired(base: Path, cand: Path, setting: str) -> np.ndarray:
    """PSNR(candidate) − PSNR(base) per face of `setting` (a restored folder in both)."""
    diffs = []
    for f in sorted((base / setting).glob("*.png")):
        other = cand / setting / f.name
        if not other.exists():
            raise SystemExit(f"error: {other} is missing: the two benches must cover the same faces")
        gt = read_rgb(base / "gt" / f.name)
        diffs.append(psnr(read_rgb(other), gt) - psnr(read_rgb(f), gt))
    return np.asarray(diffs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", type=Path)
    ap.add_argument("candidate", type=Path)
    ap.add_argument("-o", "--output", type=Path, default=None, help="also write the table here (markdown)")
    a = ap.parse_args(argv)
    for d in (a.base, a.candidate):
        if not (d / "gt").is_dir():
            print(f"error: {d} is not a bench output folder (no gt/)", file=sys.stderr)
            return 2
    settings = sorted(p.name for p in a.base.iterdir() if p.is_dir() and p.name not in ("gt", "degraded")
                      and (a.candidate / p.name).is_dir())
    lines = [f"{a.candidate} − {a.base}", "", "| setting | faces | mean ΔPSNR (dB) | SE | better on |", "|---|---|---|---|---|"]
    for s in settings:
        d = paired(a.base, a.candidate, s)
        if len(d) < 2:
            continue
        lines.append(f"| {s} | {len(d)} | {d.mean():+.3f} | {d.std(ddof=1) / np.sqrt(len(d)):.3f} | "
                     f"{int((d > 0).sum())}/{len(d)} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if a.output:
        write_bytes_atomic(a.output, text.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
