"""What the commands share: numeric arguments checked at the boundary, the restore / runtime /
engine flags, the exit statuses, and the report a folder job ends with.

`number(kind, lo, hi)` is an argparse `type=`: a bad value is one argparse error line and exit 2
(usage error), never garbage output and never an internal error later. `ranged(help, ...)`
appends the range to an option's help text, so `--help` and the error say the same thing.
"""
from __future__ import annotations

import argparse
import math
import sys

from dynface.errors import DynfaceError

SEED_MAX = 2**63 - 1          # torch.Generator.manual_seed takes a 64-bit value
THREADS_MAX = 1024
T_MAX = 999                   # the last timestep of the 1000-step schedule every model set uses
STEPS_MAX = T_MAX + 1
IMAGE_SIDE_MAX = 8192
EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3  # a file failed; a usage or known error; a bug


class OneLineParser(argparse.ArgumentParser):
    """An argument error is one line (what is wrong and where the help is), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _fmt(v) -> str:
    if v is None:
        return ""
    return f"{v:g}" if isinstance(v, float) else str(v)


def range_text(lo, hi) -> str:
    if hi is None:
        return f">= {_fmt(lo)}"
    if lo is None:
        return f"<= {_fmt(hi)}"
    return f"{_fmt(lo)}..{_fmt(hi)}"


def number(kind: type, lo=None, hi=None, lo_open: bool = False):
    """argparse type: an int or a finite float within [lo, hi] (lo excluded when `lo_open`)."""

    def parse(text: str):
        try:
            v = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number")
        low_bad = lo is not None and (v <= lo if lo_open else v < lo)
        if low_bad or (hi is not None and v > hi):
            want = f"> {_fmt(lo)}" + (f" and <= {_fmt(hi)}" if hi is not None else "") if lo_open else range_text(lo, hi)
            raise argparse.ArgumentTypeError(f"{text}: must be {want}")
        return v

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def ranged(help_text: str, lo=None, hi=None, lo_open: bool = False) -> str:
    """help text with the accepted range appended."""
    rng = f"> {_fmt(lo)}" + (f", <= {_fmt(hi)}" if hi is not None else "") if lo_open else range_text(lo, hi)
    return f"{help_text} [{rng}]" if help_text else f"[{rng}]"


def add_number(p, *flags, kind=int, lo=None, hi=None, lo_open=False, help="", **kw):
    """p.add_argument with a checked numeric type and the range in the help."""
    return p.add_argument(*flags, type=number(kind, lo, hi, lo_open), help=ranged(help, lo, hi, lo_open), **kw)


def add_max_pixels(p) -> None:
    """--max-pixels: the decoded-image cap of every input (default $DYNFACE_MAX_PIXELS, else 64 MP)."""
    add_number(p, "--max-pixels", kind=int, lo=64, default=None,
               help="refuse input images with more pixels than this, before decoding them "
                    "(default $DYNFACE_MAX_PIXELS, else 64000000)")


class CLIError(DynfaceError):
    """A command line that cannot run as given (exit 2)."""


def _bool_flag(p, name: str, default: bool, help: str):
    p.add_argument(f"--{name}", dest=name.replace("-", "_"), action=argparse.BooleanOptionalAction, default=default,
                   help=help)


def add_restore_options(p) -> None:
    p.add_argument("--method", choices=["dynface", "rm", "bicubic", "idm"], default="dynface",
                   help="dynface: full DynFaceRestore; rm: restoration network only; idm: IDM conditional diffusion")
    p.add_argument("--weights-dir", default=None, help="model set folder (default: the embedded CPU models)")
    add_number(p, "--steps", lo=1, hi=STEPS_MAX, default=None,
               help="network evaluations from the start step (default: model set's)")
    p.add_argument("--n-guidance", type=int, default=None, choices=[1, 2, 3, 4], help="number of guidance images (Eq. 15)")
    add_number(p, "--guidance-scale", "--zeta", dest="zeta", kind=float, lo=0.0, hi=100.0, default=None,
               help="zeta of Eq. 5")
    add_number(p, "--sigma-lr", kind=float, lo=0.0, hi=100.0, default=None, help="eta of Eq. 7 (kernel refinement step)")
    add_number(p, "--eta", kind=float, lo=0.0, hi=1.0, default=1.0, help="1 = ancestral DDPM steps (Eq. 6), 0 = DDIM")
    add_number(p, "--guide-every", lo=1, hi=STEPS_MAX, default=1, help="guide every k-th step only")
    add_number(p, "--seed", lo=0, hi=SEED_MAX, default=0)
    _bool_flag(p, "dblm", True, "Dynamic Blur-Level Mapping (off = DM only: guide with the raw input)")
    _bool_flag(p, "dsst", True, "Dynamic start step (off = --fixed-start)")
    add_number(p, "--fixed-start", lo=0, hi=T_MAX, default=T_MAX, help="start step when --no-dsst")
    _bool_flag(p, "dgsa", True, "learned per-pixel guidance scale (off = M = 1)")
    _bool_flag(p, "refine", True, "kernel refinement of Eq. 7")
    _bool_flag(p, "channels-last", False, "channels_last (NHWC) memory layout for every network")
    from dynface.core.fidelity_control import FIDELITY_DEFAULT

    add_number(p, "--fidelity", kind=float, lo=0.0, hi=1.0, default=None, metavar="W",
               help="1 = closest to the restoration network's output, 0 = most freedom for the prior "
                    f"(default: the method's own setting, {FIDELITY_DEFAULT:g}; docs/fidelity.md)")
    add_number(p, "--samples", lo=1, hi=64, default=1, metavar="K",
               help="draw K posterior samples in one batch and write their mean and per-pixel std heat map "
                    "to uncertainty/ (default 1: no map)")


def add_runtime_options(p) -> None:
    """--threads and --precision (with the old --bf16/--no-bf16 as hidden aliases), for every command that runs networks."""
    from dynface.core.hardware import PRECISION_CHOICES

    add_number(p, "--threads", lo=1, hi=THREADS_MAX, default=None,
               help="CPU threads (default: the physical cores this process may use; see `dynface info`)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="autocast precision of every network; auto (default): bf16 only where the CPU/GPU runs it "
                        "natively (avx512_bf16/amx_bf16 or a bf16 CUDA device), else fp32")
    p.add_argument("--bf16", dest="precision", action="store_const", const="bf16", help=argparse.SUPPRESS)
    p.add_argument("--no-bf16", dest="precision", action="store_const", const="fp32", help=argparse.SUPPRESS)


def add_engine_options(p) -> None:
    """--engine local|ray, --address, --workers: where a folder job runs (engines/ray_engine.py)."""
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process; ray: files spread over a Ray cluster (pip install 'dynface[ray]')")
    p.add_argument("--address", default=None,
                   help="with --engine ray: an existing cluster (e.g. 10.0.0.1:6379 or auto); default: start a "
                        "local Ray runtime on 127.0.0.1")
    add_number(p, "--workers", lo=1, hi=4096, default=None,
               help="with --engine ray: model-loading actors (default: 1 locally, the cluster's CPUs / --threads "
                    "with --address); --threads is then the threads of each")


def engine_workers(a) -> int | None:
    """--workers with --engine ray only; None means "as many as the cluster allows" (only with --address)."""
    if a.engine != "ray" and (a.workers is not None or a.address):
        raise CLIError("--workers and --address need --engine ray")
    return a.workers if a.workers is not None or a.address else 1


def options_from_args(a, models):
    from dynface.core.fidelity_control import check_fidelity
    from dynface.core.uncertainty import check_samples
    from dynface.pipeline import RestoreOptions

    return RestoreOptions.for_models(models, method=a.method, steps=a.steps, n_guidance=a.n_guidance,
                                     zeta=a.zeta, sigma_lr=a.sigma_lr, eta=a.eta, seed=a.seed, dblm=a.dblm, dsst=a.dsst,
                                     fixed_start=a.fixed_start, dgsa=a.dgsa, refine=a.refine, guide_every=a.guide_every,
                                     precision=a.precision, channels_last=a.channels_last,
                                     fidelity=None if a.fidelity is None else check_fidelity(a.fidelity),
                                     samples=check_samples(a.samples))


def finish(rep, out, verb: str) -> int:
    """Print a folder job's warnings, count and failures; EXIT_FAILED when any file failed."""
    for w in rep.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{verb} {len(rep.done)} file(s) into {out}", file=sys.stderr)
    if rep.failed:
        print(f"{len(rep.failed)} file(s) failed:", file=sys.stderr)
        for f, why in rep.failed:
            print(f"  {why}", file=sys.stderr)
        return EXIT_FAILED
    return 0
