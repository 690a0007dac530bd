"""Throughput of the face generator (`dynface synth`): faces/s per output size and thread count.

    python benchmarks/synth_speed.py [-n 12] [-o docs/data-synth-speed.md]

Renders n faces per row into a temporary folder (rendering, the detector's check, encoding and the
atomic write: the whole per-face cost) and prints a markdown table with the CPU named.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=12)
    ap.add_argument("--sizes", default="256,512,1024")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("-o", "--output", default=None, help="also write the table here")
    a = ap.parse_args(argv)
    from dynface.jobs.synth import SynthSettings, synthesize
    from dynface.synth.generator import FaceGenerator

    rows = ["| size | threads | faces/s | s/face | passed |", "|---|---|---|---|---|"]
    for th in map(int, a.threads.split(",")):
        gen = FaceGenerator(threads=th)
        gen.face(0, 10**6, size=256)  # warm-up (compilation caches, truncation mean)
        for size in map(int, a.sizes.split(",")):
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                rep = synthesize(Path(d) / "f", a.n, SynthSettings(size=size), generator=gen, progress=False)
                dt = time.perf_counter() - t0
            rows.append(f"| {size} | {th} | {a.n / dt:.2f} | {dt / a.n:.2f} | {rep['passed']}/{a.n} |")
            print(rows[-1], flush=True)
    return write_table(rows, a.output)


def write_table(rows: list[str], output=None, extra: str = "") -> int:
    """Print a markdown table under the CPU's name (and `extra` below it); also into `output`."""
    from dynface.core.hardware import cpu_summary

    text = f"CPU: {cpu_summary()}\n\n" + "\n".join(rows) + "\n" + (f"\n{extra}\n" if extra else "")
    print(text)
    if output:
        Path(output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
