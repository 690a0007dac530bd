"""The `dynface` command line: one module per command (`register` adds its parser, `cmd_*` runs it);
`flags` holds what they share, `guard` what every command runs inside, `commands` the parser of
them all; `main` here is the entry point.

This package itself imports nothing heavy: `main` loads the commands (and torch, seconds) inside
the same signal handling as a command, so Ctrl-C while the libraries load is `interrupted`, 130.
"""


def main(argv=None) -> int:
    """`dynface ...`: load the commands, then run one (`cli.commands.main`); returns the exit status."""
    import sys

    from dynface.core.atomic import Terminated, signals_as_exceptions

    with signals_as_exceptions():  # also around loading and parsing, before the command's own guard
        try:
            from dynface.cli.commands import main as run

            return run(argv)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Terminated as e:
            print(f"dynface: {e}", file=sys.stderr)
            return 128 + e.signum


__all__ = ["main"]
