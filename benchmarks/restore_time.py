"""Whole-process time of the README example, as a user sees it (interpreter start, model loading,
restoration and writing included), per setting:

    python benchmarks/restore_time.py [--runs 3] [-o docs/speed/restore-time.md]

Settings: the default (`--precision auto`: bf16 where this CPU runs it natively), fp32, fp32 without
the face upsampler, and the default on an **emulated AVX2-only CPU** (no AVX-512, AMX or native bf16:
`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`, which restrict PyTorch's own kernels and oneDNN's
to AVX2, and `--precision fp32`, what `auto` picks on such a CPU). The emulation keeps this CPU's clock
and caches, so a real AVX2 machine can be faster or slower; it says what the instruction set alone
costs. Each run writes to a fresh temporary folder; prints a markdown table (median, min, max
seconds) headed by the CPU and writes it to the output file.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT.parent / "shared" / "data" / "val" / "real" / "codeformer_0240.png"
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SETTINGS = [  # (row, extra restore flags, extra environment)
    ("default (precision auto)", [], {}),
    ("fp32", ["--precision", "fp32"], {}),
    ("fp32, --no-upsample", ["--precision", "fp32", "--no-upsample"], {}),
    ("emulated AVX2-only CPU (auto = fp32)", ["--precision", "fp32"], AVX2_ONLY),
]


def time_restore(image: Path, flags: list[str], env: dict) -> float:
    """Seconds of one `dynface restore -i IMAGE --aligned` process (fails loudly on a non-zero exit)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "dynface.cli", "restore", "-i", str(image), "--aligned", "-o", out, "-q", *flags]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
        secs = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"restore failed ({' '.join(flags) or 'default'}): {done.stderr.strip()[-300:]}")
    return secs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, default=EXAMPLE)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "speed" / "restore-time.md")
    a = ap.parse_args(argv)
    if not a.image.is_file():
        raise SystemExit(f"{a.image}: no such image (the README example lives in ../shared/data/val/real)")
    from dynface.core.atomic import write_bytes
    from dynface.core.hardware import machine_header

    rows = []
    for name, flags, env in SETTINGS:
        secs = [time_restore(a.image, flags, env) for _ in range(a.runs)]
        rows.append(f"| {name} | {statistics.median(secs):.2f} | {min(secs):.2f} | {max(secs):.2f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    table = "\n".join([*machine_header(),
                       f"`dynface restore -i {a.image.name} --aligned -o DIR`, whole process, {a.runs} runs per setting",
                       "", "| setting | median s | min s | max s |", "|---|---|---|---|", *rows, ""])
    print(table)
    a.output.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(a.output, table.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
