"""The working size of the model set: network seconds per face against the detail a size can hold.

    python benchmarks/working_size.py ../shared/data/val/clean [--sizes 128 192 256 384 512] [-o FILE]

Per working size S (the networks of the embedded set, fully convolutional, built at S with random
weights; the UNet keeps its attention at 16-pixel feature maps):
- seconds of one RM forward, of one TM + SDE forward (SE), of one guided sampler step (prior UNet
  forward and backward to x_t, paper Eq. 7, plus one DGSA forward), and of the face upsampler from S
  to 4S (below 512), median of `--repeats`, at the precision `auto` picks here and in fp32;
- the networks' seconds per face at the most a face can cost (DSST starts at t = T-1: every one of
  the default 25 steps runs) and at 8 steps;
- the ceiling a perfect restoration at S keeps: the clean faces taken down to S and back to 512 px
  (bicubic), their PSNR and detail ratio (mean |Laplacian| against the 512 px truth; 1 = all of it).
Process start, face detection and paste-back come on top and do not grow with S (`dynface restore`
on one face: `docs/speed/`). Prints a markdown table with the CPU and writes it to FILE.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN primitive creation)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def clean_faces(clean_dir: str, limit: int) -> list:
    """The first `limit` clean faces at 512 px, in [-1, 1]."""
    import torch.nn.functional as F

    from dynface.core.imageio import list_images, read_rgb, to_tensor

    return [F.interpolate(to_tensor(read_rgb(p)), size=(512, 512), mode="bicubic", antialias=True).clamp(-1, 1)
            for p in list_images([clean_dir])[:limit]]


def ceiling(faces: list, size: int) -> tuple[float, float]:
    """PSNR and detail ratio at 512 px of the clean faces round-tripped through size x size."""
    import torch.nn.functional as F

    from dynface.core.imagemetrics import detail_ratio, psnr

    ps, ds = [], []
    for x in faces:
        low = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True)
        up = F.interpolate(low, size=(512, 512), mode="bicubic").clamp(-1, 1)
        ps.append(psnr(up, x))
        ds.append(detail_ratio(up, x))
    return statistics.mean(ps), statistics.mean(ds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clean_dir")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 192, 256, 384, 512])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--faces", type=int, default=29, help="clean faces for the ceiling columns")
    ap.add_argument("-o", "--output", default=None)
    a = ap.parse_args(argv)
    import torch

    from synth_speed import write_table  # benchmarks/ is the script's folder, first on sys.path

    from dynface.core.hardware import autocast, resolve_precision, set_threads
    from dynface.modelset.checkpoint import read_metadata
    from dynface.modelset.manifest import embedded_or_path
    from dynface.networks.factory import build_network

    set_threads(a.threads)
    torch.manual_seed(0)
    arch = {k: read_metadata(embedded_or_path(f"embedded:{k}.safetensors"))["arch"] for k in ("rm", "tm", "sde", "prior", "dgsa", "up")}
    auto = resolve_precision("auto", torch.device("cpu"))
    faces = clean_faces(a.clean_dir, a.faces)
    rows = [f"| size | precision | RM s | SE s | one guided step s | networks s/face, 25 steps | 8 steps | "
            f"x4 upsampler s | ceiling PSNR at 512 | ceiling detail at 512 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in a.sizes:
        unet = {**arch["prior"]["unet"], "image_size": s}
        nets = {k: build_network(k, arch[k]).eval() for k in ("rm", "tm", "sde", "dgsa", "up")}
        prior = build_network("prior", {**arch["prior"], "unet": unet}).eval()
        x, t = torch.rand(1, 3, s, s) * 2 - 1, torch.tensor([500])
        p, dr = ceiling(faces, s)
        for precision in dict.fromkeys([auto, "fp32"]):
            def run(fn):
                def go():
                    with autocast("cpu", precision):
                        fn()
                return timed(go, a.repeats)

            def guided_step():
                xt = x.clone().requires_grad_(True)
                eps, _ = prior(xt, t)
                eps.float().square().mean().backward()
                with torch.no_grad():
                    nets["dgsa"](x, x, t)  # M_t from the guidance image and x0_hat

            with torch.no_grad():
                rm_s = run(lambda: nets["rm"](x))
                se_s = run(lambda: nets["sde"](nets["tm"](x)))
                up_s = run(lambda: nets["up"](x)) if s < 512 else None
            step_s = run(guided_step)
            rows.append(f"| {s} | {precision} | {rm_s:.3f} | {se_s:.3f} | {step_s:.3f} | {rm_s + se_s + 25 * step_s:.1f} | "
                        f"{rm_s + se_s + 8 * step_s:.1f} | {'–' if up_s is None else f'{up_s:.3f}'} | "
                        f"{'– (no resampling)' if s >= 512 else f'{p:.2f}'} | {dr:.2f} |")
            print(rows[-1], flush=True)
    return write_table(rows, a.output, f"{a.threads} thread(s); networks with random weights (timing only); "
                                         f"ceiling over the first {a.faces} faces of {a.clean_dir}")


if __name__ == "__main__":
    sys.exit(main())
