"""Does a prior see the colour (per-channel mean) of x_t? One row per prior file and step t.

    python benchmarks/prior_colour.py PRIOR [PRIOR ...] [-t 999 700 300] [-o FILE]

PRIOR: a prior export (`embedded:prior.safetensors` for the shipped one). For 4 pure-noise
images x_t: how far the predicted eps's mean moves when one channel of x_t is shifted by 0.1
(the true posterior moves it by about sqrt(1 - abar_t) * 0.1 at the noisiest steps, and by less
as t falls), and |mean x0_hat| of the Tweedie estimate (paper Eq. 3) from that noise, which is
the colour a sample starting there gets before any later step can change it.
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("priors", nargs="+")
    ap.add_argument("-t", "--steps", type=int, nargs="+", default=[999, 900, 700, 500, 300])
    ap.add_argument("-o", "--output", default=None)
    a = ap.parse_args(argv)
    import torch

    from synth_speed import write_table  # benchmarks/ is the script's folder, first on sys.path

    from dynface.core.schedule import Schedule, tweedie_x0
    from dynface.modelset.checkpoint import load_network, read_metadata
    from dynface.modelset.manifest import embedded_or_path

    sch = Schedule.linear()
    rows = ["| prior | prediction | iterations | t | eps mean moved by a +0.1 shift | posterior at high t | "
            "mean x0_hat from noise |", "|---|---|---|---|---|---|---|"]
    for name in a.priors:
        path = embedded_or_path(name)
        net, meta = load_network(path, "prior").eval(), read_metadata(path)
        size = net.image_size
        noise = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(0))
        shift = torch.zeros(1, 3, 1, 1)
        shift[0, 0] = 0.1
        for t in a.steps:
            tt, ab = torch.full((4,), t), sch.abar(t)
            with torch.no_grad():
                e0 = net(noise, tt)[0].float()
                e1 = net(noise + shift, tt)[0].float()
            moved = float((e1 - e0)[:, 0].mean())
            x0_mean = float(tweedie_x0(noise, e0, ab).mean((2, 3)).abs().mean())
            rows.append(f"| {name} | {net.prediction} | {meta.get('iters', '?')} | {t} | {moved:+.4f} | "
                        f"{0.1 * float((1 - ab).sqrt()):.4f} | {x0_mean:.2f} |")
            print(rows[-1], flush=True)
    return write_table(rows, a.output)


if __name__ == "__main__":
    sys.exit(main())
