"""What every `dynface` command runs inside: the input limits applied, SIGTERM/SIGHUP turned into
exceptions (so no temp file survives), input warnings shown as one line each, and every error
turned into a message and an exit status (never a traceback).

The exit statuses, one table (docs/reliability.md shows it; a test compares the two):
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from dynface.cli.flags import EXIT_FAILED, EXIT_INTERNAL, EXIT_USAGE, CLIError
from dynface.errors import DynfaceError

MAX_ERROR_LINES = 30
EXIT_OK, EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE, EXIT_TERMINATED = 0, 129, 130, 141, 143
EXIT_CODES = {
    EXIT_OK: "done: every file was processed",
    EXIT_FAILED: "some file failed (each named on stderr, the batch went on), or a known error said in one line",
    EXIT_USAGE: "usage error: a bad flag, value or combination, said in one line; nothing was done",
    EXIT_INTERNAL: "internal error: a bug, one `internal error` line (`--debug` shows the traceback)",
    EXIT_HANGUP: "SIGHUP: stopped, no half-written file left",
    EXIT_INTERRUPTED: "Ctrl-C (SIGINT), also while the libraries load: `interrupted`, no half-written file left",
    EXIT_BROKEN_PIPE: "the reader of stdout went away (`dynface info` piped into `head -1`): quiet, no message",
    EXIT_TERMINATED: "SIGTERM: stopped, no half-written file left",
}


def run_command(a, argv=None) -> int:
    """Run `a.func(a)`; returns its exit status, 130 on Ctrl-C, 128+N on signal N, 1/2 on a known
    error (its message), 3 on anything else (one `internal error` line; `--debug` re-raises)."""
    from dynface.core.atomic import Terminated, signals_as_exceptions

    with signals_as_exceptions(), image_warnings_as_lines():
        try:
            _keep_undecodable_names(sys.stdout)
            check_paths(a)
            apply_input_limits(a)
            code = int(a.func(a) or 0)
            sys.stdout.flush()  # a closed pipe shows here, inside the guard, not at interpreter exit
            return code
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Terminated as e:
            print(f"dynface: {e}", file=sys.stderr)
            return 128 + e.signum
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        except Exception as e:  # noqa: BLE001 - the CLI turns every error into a message
            if not is_known(e) and "--debug" in (argv or sys.argv):
                raise
            return report_error(e)


def _keep_undecodable_names(stream) -> None:
    """File names that are not valid UTF-8 are printed with their odd bytes escaped (\\udcff), not an error."""
    if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (ValueError, OSError):
            pass


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's last flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def check_paths(a) -> None:
    """An empty `-o` would mean the current folder: a usage error, not a silent choice."""
    for name in ("output",):
        if getattr(a, name, None) == "":
            raise CLIError(f"--{name} is empty: give a folder (use . for the current one)")


def apply_input_limits(a) -> None:
    """--max-pixels of this command; a bad $DYNFACE_MAX_PIXELS is reported before any work."""
    from dynface.core.imageio import max_pixels, set_max_pixels

    set_max_pixels(getattr(a, "max_pixels", None))
    max_pixels()


@contextmanager
def image_warnings_as_lines():
    """Show dynface.core.imageio.ImageWarning as one `warning:` line on stderr, every time."""
    import warnings

    from dynface.core.imageio import ImageWarning

    old_show, old_filters = warnings.showwarning, warnings.filters[:]

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ImageWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            old_show(message, category, filename, lineno, file, line)

    warnings.simplefilter("always", ImageWarning)
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = old_show
        warnings.filters[:] = old_filters


def is_known(e: BaseException) -> bool:
    return isinstance(e, (DynfaceError, FileExistsError, FileNotFoundError, ValueError))


def report_error(e: BaseException) -> int:
    """Known errors: the message; a multi-line report (a checkpoint's mismatched keys and shapes)
    is shown in full up to MAX_ERROR_LINES. Anything else: one `internal error` line, exit 3."""

    if not is_known(e):
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"dynface: internal error: {type(e).__name__}: {first}", file=sys.stderr)
        return EXIT_INTERNAL
    lines = [ln for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
    more = len(lines) - MAX_ERROR_LINES
    lines = lines[:MAX_ERROR_LINES] + ([f"  ... {more} more line(s)"] if more > 0 else [])
    print("dynface: error: " + "\n".join(lines), file=sys.stderr)
    return EXIT_USAGE if isinstance(e, CLIError) else EXIT_FAILED
