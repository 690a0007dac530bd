"""The web page's fidelity sweep, measured through the page's own job path (`web.jobs.run_job`).

    PYTHONPATH=src python benchmarks/web_fidelity.py [-o docs/web/fidelity.json] [--threads 2]

For each page example (a shipped London face, degraded at run time) and each fidelity w in
(0, 0.5, 1): the final image of an aligned-crop job with the default method and steps, seed 0.
Reports the mean |difference| per pixel and channel on the 0..255 scale between the sweep's
results (the whole 512x512 image and the restored face region), the distance of each result to
the input (higher fidelity must be closer), and, for comparison, the same sweep of the sampler's
own knob (`RestoreOptions.fidelity`, the CLI's `--fidelity`), which the page used before.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def detail(img: np.ndarray, mask: np.ndarray) -> float:
    """Mean |Laplacian| of the grey image inside `mask` (0..255 scale): how much fine detail there is."""
    g = img.mean(-1)
    lap = np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])
    return float(lap[mask[1:-1, 1:-1]].mean())


def save_strip(path, images, labels, size=320) -> None:
    """The face region of each image side by side, labelled."""
    from PIL import Image, ImageDraw

    tiles = []
    for im, label in zip(images, labels):
        t = Image.fromarray(np.clip(im, 0, 255).astype(np.uint8)).crop((96, 96, 416, 416)).resize((size, size))
        ImageDraw.Draw(t).rectangle((0, 0, size, 22), fill=(255, 255, 255))
        ImageDraw.Draw(t).text((6, 5), label, fill=(0, 0, 0))
        tiles.append(t)
    strip = Image.new("RGB", (size * len(tiles), size))
    for i, t in enumerate(tiles):
        strip.paste(t, (i * size, 0))
    strip.save(path, optimize=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=None, help="write the numbers here (JSON)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--examples", type=int, default=3)
    ap.add_argument("--sampler-knob", action="store_true", help="also sweep RestoreOptions.fidelity")
    ap.add_argument("--strip", default=None, help="save the first example's input and sweep side by side (PNG)")
    a = ap.parse_args(argv)
    from dynface.core.hardware import set_threads
    from dynface.core.imageio import read_rgb
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import Restorer, RestoreOptions
    from dynface.web.examples import make_examples
    from dynface.web.jobs import JobSettings, ServerConfig, run_job

    set_threads(a.threads)
    models = ModelSet.load(None)
    restorer, cfg = Restorer(models), ServerConfig()
    base = RestoreOptions.for_models(models, precision="auto")
    tmp = Path(tempfile.mkdtemp(prefix="dynface-webfid-"))
    examples = make_examples(tmp / "examples")[:a.examples]
    sweep = (0.0, 0.5, 1.0)
    rows = []

    def job(path, settings, opt_base, tag):
        t0 = time.monotonic()
        res = run_job([path], settings, restorer, opt_base, cfg, tmp / tag)
        assert res.photos, res.messages
        return res.photos[0].after.astype(np.float64), time.monotonic() - t0

    def diffs(outs, y, mask):
        d = lambda a, b, m=None: float(np.abs(a - b)[m].mean() if m is not None else np.abs(a - b).mean())  # noqa: E731
        pairs = {f"{sweep[i]:g}->{sweep[j]:g}": (i, j) for i, j in ((0, 1), (1, 2), (0, 2))}
        return {"mean_abs_diff": {k: round(d(outs[i], outs[j]), 2) for k, (i, j) in pairs.items()},
                "mean_abs_diff_face": {k: round(d(outs[i], outs[j], mask), 2) for k, (i, j) in pairs.items()},
                "to_input": [round(d(o, y), 2) for o in outs],
                "to_input_face": [round(d(o, y, mask), 2) for o in outs],
                "detail_face": [round(detail(o, mask), 2) for o in outs], "detail_input_face": round(detail(y, mask), 2)}

    for n, ex in enumerate(examples):
        y = read_rgb(ex.path).astype(np.float64)
        outs, secs = [], []
        for w in sweep:
            o, s = job(ex.path, JobSettings(aligned=True, fidelity=w), base, f"p{n}_{w}")
            outs.append(o)
            secs.append(round(s, 1))
        mask = np.abs(outs[0] - y).max(-1) > 0  # where the restored face was pasted
        row = {"example": ex.path.name, "caption": ex.caption, "page": diffs(outs, y, mask), "seconds": secs}
        if a.sampler_knob:
            k_outs = [job(ex.path, JobSettings(aligned=True), replace(base, fidelity=w), f"k{n}_{w}")[0] for w in sweep]
            row["sampler_knob"] = diffs(k_outs, y, mask)
        rows.append(row)
        if a.strip and n == 0:
            save_strip(a.strip, [y] + outs, ["input"] + [f"fidelity {w:g}" for w in sweep])
        print(json.dumps(row), flush=True)
    if a.output:
        Path(a.output).write_text(json.dumps({"sweep": list(sweep), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
