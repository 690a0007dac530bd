"""The `dynface` parser: one module per command registers its parser; errors are one line, exit != 0.

    dynface restore | degrade | synth | sample | train | build-dsst | info | weights | clean | eval | bench | serve
"""
from __future__ import annotations

from dynface.cli import bench, build_dsst, clean, degrade, eval, info, restore, sample, serve, synth, train, weights
from dynface.cli.flags import OneLineParser
from dynface.cli.guard import run_command

COMMANDS = (restore, degrade, synth, sample, train, build_dsst, info, weights, clean, eval, bench, serve)


def main(argv=None) -> int:
    ap = OneLineParser(prog="dynface", description="Blind face restoration with diffusion priors (CPU).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for command in COMMANDS:
        command.register(sub)
    return run_command(ap.parse_args(argv), argv)
