"""`dynface sample`: unconditional faces from a prior (what it knows), resumable, with a grid."""
from __future__ import annotations

import sys

from dynface.cli.flags import add_number, add_runtime_options
from dynface.pipeline import SEED_MAX
from dynface.sampling.unconditional import SAMPLE_STEPS

STEPS_MAX = 1000


def register(sub) -> None:
    p = sub.add_parser("sample", help="unconditional faces from a model set's prior (or a prior file)")
    add_number(p, "-n", "--num", lo=1, hi=100_000, required=True, help="samples 0..N-1 (those missing are made)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--weights-dir", default=None, help="a model set folder (default: the embedded one)")
    p.add_argument("--prior", default=None, help="a prior .safetensors file instead (e.g. a training run's export)")
    add_number(p, "--steps", lo=1, hi=STEPS_MAX, default=SAMPLE_STEPS,
               help=f"network evaluations, respaced from T-1 (default {SAMPLE_STEPS}: more give worse samples "
                    "from the embedded prior, docs/quality.md)")
    add_number(p, "--eta", kind=float, lo=0.0, hi=1.0, default=1.0, help="1: ancestral DDPM, 0: DDIM")
    add_number(p, "--seed", lo=0, hi=SEED_MAX, default=0, help="sample k is a pure function of (seed, k)")
    add_number(p, "--batch", lo=1, hi=1024, default=8, help="samples per chain")
    add_runtime_options(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_sample)


def cmd_sample(a) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from dynface.core.hardware import resolve_precision, set_threads
    from dynface.core.imageio import to_uint8, write_image
    from dynface.core.grid import save_grid
    from dynface.sampling.unconditional import sample_prior

    set_threads(a.threads)
    if a.prior:
        from dynface.modelset.checkpoint import load_network, read_metadata

        net = load_network(a.prior, "prior")
        size = int(read_metadata(a.prior)["arch"]["unet"]["image_size"])
    else:
        from dynface.modelset.folder import ModelSet

        models = ModelSet.load(a.weights_dir)
        models.need("prior", why="sampling")
        net, size = models.nets["prior"], models.size
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    precision = resolve_precision(a.precision)
    names = [out / f"sample_{k:06d}.png" for k in range(a.num)]
    todo = [k for k in range(a.num) if not (names[k].is_file() and names[k].stat().st_size > 0)]
    bar = tqdm(total=a.num, initial=a.num - len(todo), desc="sample", unit="face", disable=a.quiet)
    for i in range(0, len(todo), a.batch):
        ks = todo[i:i + a.batch]
        x = sample_prior(net, size, ks, a.steps, seed=a.seed, eta=a.eta, precision=precision)
        for k, img in zip(ks, x):
            write_image(names[k], to_uint8(img[None]))
        bar.update(len(ks))
    bar.close()
    grid = save_grid([names[k] for k in range(min(a.num, 64))], out / "grid.jpg")
    print(f"{a.num} sample(s) in {out} ({a.num - len(todo)} already there), {a.steps} steps, eta {a.eta}; grid: {grid}",
          file=sys.stderr)
    return 0
