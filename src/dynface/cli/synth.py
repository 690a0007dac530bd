"""`dynface synth`: N generated FFHQ-aligned faces into a folder, checked, resumable (jobs/synth.py)."""
from __future__ import annotations

import sys

from dynface.cli.flags import THREADS_MAX, add_engine_options, add_number, engine_workers
from dynface.jobs.synth import EXTS, SynthSettings
from dynface.synth.generator import SIZES

MAX_FACES = 10_000_000
_D = SynthSettings()


def register(sub) -> None:
    p = sub.add_parser("synth", help="generate sharp FFHQ-aligned faces (MobileStyleGAN; extra `synth`), "
                                     "each checked; resumable")
    add_number(p, "-n", "--num", lo=1, hi=MAX_FACES, required=True, help="faces 0..N-1 (those missing are made)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--size", type=int, choices=SIZES, default=_D.size, help=f"output side (default {_D.size})")
    add_number(p, "--truncation", kind=float, lo=0.0, hi=1.0, default=_D.truncation,
               help=f"psi: 1 = the full variety, lower = closer to the average face (default {_D.truncation})")
    add_number(p, "--seed", lo=0, hi=2**63 - 1, default=_D.seed, help="face i is a pure function of (seed, i)")
    p.add_argument("--ext", choices=EXTS, default=_D.ext, help=f"image format (default {_D.ext}; jpg: quality 95)")
    add_number(p, "--threads", lo=1, hi=THREADS_MAX, default=None,
               help="CPU threads of the generator (default: the runtime's choice)")
    add_engine_options(p)
    add_number(p, "--batch", lo=1, hi=4096, default=16, help="with --engine ray: faces per Ray task")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_synth)


def cmd_synth(a) -> int:
    from dynface.cli.flags import CLIError
    from dynface.jobs.synth import SynthError, synthesize

    workers = engine_workers(a)
    s = SynthSettings(seed=a.seed, truncation=a.truncation, size=a.size, ext=a.ext)
    try:
        if a.engine == "ray":
            from dynface.engines.ray_engine import synthesize_ray

            rep = synthesize_ray(a.output, a.num, s, address=a.address, workers=workers, threads=a.threads or 1,
                                 batch=a.batch, progress=not a.quiet)
        else:
            rep = synthesize(a.output, a.num, s, threads=a.threads, progress=not a.quiet)
    except SynthError as e:  # settings that do not fit the folder: the command line, as given, cannot run
        raise CLIError(str(e)) from None
    rate = f", {rep['written'] / rep['seconds']:.2f} faces/s" if rep["written"] and rep["seconds"] else ""
    print(f"wrote {rep['written']} face(s), skipped {rep['skipped']} already done, into {a.output}{rate}; "
          f"{rep['passed']}/{rep['n']} passed the checks", file=sys.stderr)
    for i, why in rep["rejected"]:
        print(f"  rejected face {i} ({why}): moved to rejected/", file=sys.stderr)
    return 0
