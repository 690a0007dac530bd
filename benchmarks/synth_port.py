"""The PyTorch port of the face generator against the OpenVINO runtime: largest |difference|.

    python benchmarks/synth_port.py [-n 4] [-o FILE]

For n latents: the styles (mapping) and the 1024^2 images (synthesis) of both, in [-1, 1] units,
the uint8 faces that `dynface synth` would write, the seconds per face of each, and whether a
gradient reaches the style through the torch synthesis. Prints a markdown table with the CPU.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=4)
    ap.add_argument("-o", "--output", default=None)
    a = ap.parse_args(argv)
    import torch

    from synth_speed import write_table  # benchmarks/ is the script's folder, first on sys.path

    from dynface.synth.generator import FaceGenerator, latent
    from dynface.synth.torch_port import TorchFaceGenerator

    ov, tg = FaceGenerator(), TorchFaceGenerator()
    rows = ["| face | style max abs diff | image max abs diff | image mean abs diff | uint8 pixels that differ | "
            "OpenVINO s | torch s |", "|---|---|---|---|---|---|---|"]
    for i in range(a.n):
        z = latent(0, i)
        t0 = time.perf_counter()
        w_ov = ov._mapping([z[None]])[0]
        img_ov = ov._synthesis([w_ov])[0]
        t_ov = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            w_t = tg.mapping(torch.from_numpy(z[None]))
            img_t = tg(w_t).numpy()
        t_t = time.perf_counter() - t0
        u8 = lambda x: np.clip((x[0].transpose(1, 2, 0) + 1) * 127.5, 0, 255).round().astype(np.uint8)  # noqa: E731
        differ = int((u8(img_ov) != u8(img_t)).sum())
        rows.append(f"| {i} | {np.abs(w_ov - w_t.numpy()).max():.2e} | {np.abs(img_ov - img_t).max():.2e} | "
                    f"{np.abs(img_ov - img_t).mean():.2e} | {differ} of {img_t.size} | {t_ov:.2f} | {t_t:.2f} |")
        print(rows[-1], flush=True)
    w = torch.from_numpy(ov._mapping([latent(0, 0)[None]])[0]).requires_grad_(True)
    tg(w).mean().backward()
    grad = f"gradient of the mean image w.r.t. the style: norm {w.grad.norm():.3e}, finite {bool(torch.isfinite(w.grad).all())}"
    return write_table(rows, a.output, grad)


if __name__ == "__main__":
    sys.exit(main())
