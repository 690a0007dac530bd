"""What every `dynface` command runs inside: the input limits applied, SIGTERM/SIGHUP turned into
exceptions (so no temp file survives), input warnings shown as one line each, and every error
turned into a message and an exit status (never a traceback)."""
from __future__ import annotations

import sys
from contextlib import contextmanager

from dynface.cli.flags import EXIT_FAILED, EXIT_INTERNAL, EXIT_USAGE, CLIError
from dynface.errors import DynfaceError

MAX_ERROR_LINES = 30


def run_command(a, argv=None) -> int:
    """Run `a.func(a)`; returns its exit status, 130 on Ctrl-C, 128+N on signal N, 1/2 on a known
    error (its message), 3 on anything else (one `internal error` line; `--debug` re-raises)."""
    from dynface.core.atomic import Terminated, signals_as_exceptions

    with signals_as_exceptions(), image_warnings_as_lines():
        try:
            apply_input_limits(a)
            return int(a.func(a) or 0)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Terminated as e:
            print(f"dynface: {e}", file=sys.stderr)
            return 128 + e.signum
        except Exception as e:  # noqa: BLE001 - the CLI turns every error into a message
            if not is_known(e) and "--debug" in (argv or sys.argv):
                raise
            return report_error(e)


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
