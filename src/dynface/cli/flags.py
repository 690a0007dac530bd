"""What the commands share: numeric arguments checked at the boundary, the restore / runtime /
engine flags, the exit statuses, and the report a folder job ends with.

`number(kind, lo, hi)` is an argparse `type=`: a bad value is one argparse error line and exit 2
(usage error), never garbage output and never an internal error later. `ranged(help, ...)`
appends the range to an option's help text, so `--help` and the error say the same thing.
The restore flags are made from the `RestoreOptions` fields (`add_option_flag`): their defaults,
ranges and help texts are written once, in pipeline.py.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import fields

from dynface.errors import DynfaceError
from dynface.pipeline import MODEL_SET_DEFAULTS, RestoreOptions

THREADS_MAX = 1024
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


def option_flags() -> dict:
    """RestoreOptions field name -> its dataclass Field, for the fields with command-line facts (pipeline._flag)."""
    return {f.name: f for f in fields(RestoreOptions) if "cli" in f.metadata}


def add_option_flag(p, name: str, **override):
    """The flag of the RestoreOptions field `name`: names, range, choices, metavar and help from the
    field's metadata; default the field's, None for MODEL_SET_DEFAULTS (the model set's). `override`
    replaces facts (help, choices) or the default for one command."""
    f = option_flags()[name]
    facts = {**f.metadata["cli"], "default": None if name in MODEL_SET_DEFAULTS else f.default, **override}
    names = facts["names"] or (f"--{name.replace('_', '-')}",)
    kw = {"dest": name, "default": facts["default"], "help": facts["help"]}
    if facts["metavar"]:
        kw["metavar"] = facts["metavar"]
    if isinstance(f.default, bool):
        return p.add_argument(*names, action=argparse.BooleanOptionalAction, **kw)
    if facts["choices"]:
        return p.add_argument(*names, type=type(facts["choices"][0]), choices=list(facts["choices"]), **kw)
    kind = float if "float" in str(f.type) else int
    return add_number(p, *names, kind=kind, lo=facts["lo"], hi=facts["hi"], **kw)


def add_restore_options(p) -> None:
    """--weights-dir and one flag per RestoreOptions field that has one (`add_option_flag`)."""
    p.add_argument("--weights-dir", default=None, help="model set folder (default: the embedded CPU models)")
    for name in option_flags():
        add_option_flag(p, name)


class _DeprecatedPrecision(argparse.Action):
    """--bf16 / --no-bf16: hidden aliases of --precision bf16 / fp32 that warn (core/deprecation.py)."""

    def __init__(self, option_strings, dest, const, **kw):
        super().__init__(option_strings, dest, nargs=0, const=const, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        from dynface.core.deprecation import deprecate

        deprecate(f"`{option_string}`", "1.0", f"use `--precision {self.const}`")
        setattr(namespace, self.dest, self.const)


def add_runtime_options(p) -> None:
    """--threads and --precision (with --bf16/--no-bf16 as deprecated hidden aliases), for every command that runs networks."""
    from dynface.core.hardware import PRECISION_CHOICES

    add_number(p, "--threads", lo=1, hi=THREADS_MAX, default=None,
               help="CPU threads (default: the physical cores this process may use; see `dynface info`)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default=RestoreOptions.precision,
                   help="autocast precision of every network; auto (default): bf16 only where the CPU/GPU runs it "
                        "natively (avx512_bf16/amx_bf16 or a bf16 CUDA device), else fp32")
    p.add_argument("--bf16", dest="precision", action=_DeprecatedPrecision, const="bf16", help=argparse.SUPPRESS)
    p.add_argument("--no-bf16", dest="precision", action=_DeprecatedPrecision, const="fp32", help=argparse.SUPPRESS)


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


def options_from_args(a, models, **given) -> RestoreOptions:
    """RestoreOptions from the parsed flags of a command: every RestoreOptions field the command has a
    flag for (`add_option_flag`, --precision), then `given`; None in MODEL_SET_DEFAULTS means the model set's."""
    flagged = {f.name: getattr(a, f.name) for f in fields(RestoreOptions) if hasattr(a, f.name)}
    return RestoreOptions.for_models(models, **{**flagged, **given})


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
