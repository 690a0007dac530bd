"""Numeric command-line arguments checked at the boundary: finite, in range, the range in --help.

`number(kind, lo, hi)` is an argparse `type=`: a bad value is one argparse error line and exit 2
(usage error), never garbage output and never an internal error later. `ranged(help, ...)`
appends the range to an option's help text, so `--help` and the error say the same thing.
"""
from __future__ import annotations

import argparse
import math

SEED_MAX = 2**63 - 1          # torch.Generator.manual_seed takes a 64-bit value
THREADS_MAX = 1024
T_MAX = 999                   # the last timestep of the 1000-step schedule every model set uses
STEPS_MAX = T_MAX + 1
IMAGE_SIDE_MAX = 8192


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
