"""The one atomic file writer: a dot-named temp file in the target's folder, fsync, rename, fsync
the folder. The temp file is removed on every exit path: an exception, Ctrl-C, and SIGTERM/SIGHUP
while `signals_as_exceptions` turns them into exceptions (the CLI runs every command inside it).

Only SIGKILL or a power cut can leave a temp file behind; its name starts with `TEMP_PREFIX`
(a dot file) and every folder reader (`imageio.list_images`) skips dot files, so it is never
read as an image.
"""
from __future__ import annotations

import atexit
import os
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

TEMP_PREFIX = ".tmp-"
_LIVE: set[str] = set()  # temp files being written now (removed at exit if an unwinding was skipped)


class Terminated(BaseException):
    """SIGTERM/SIGHUP arrived; raised from the signal handler so that cleanup code runs."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by signal {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum, frame):
    raise Terminated(signum)


@contextmanager
def signals_as_exceptions():
    """While inside, SIGTERM and SIGHUP raise `Terminated` (SIGINT already raises KeyboardInterrupt),
    so every `finally` runs and no temp file outlives the process; the old handlers come back after.
    Main thread only (elsewhere it does nothing); a handler someone else set is left alone."""
    import threading

    old = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
                old[sig] = signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM/SIGHUP while a temp file is renamed or removed (delivered right after)."""
    sigs = {getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)}
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    _LIVE.discard(tmp)


@atexit.register
def _remove_leftovers() -> None:
    for tmp in list(_LIVE):
        _remove(tmp)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` to fill a temp file beside `path`, then make it `path` in one rename.

    Either `path` is the complete new file or it is untouched (the previous file, or none); the
    temp file never survives. The mode is the umask's (not mkstemp's 0600). Returns `path`."""
    path = Path(path)
    with _signals_deferred():  # created and registered as one step
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=path.suffix, dir=path.parent)
        _LIVE.add(tmp)
        os.close(fd)
    try:
        write(Path(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _umask_mode())
        with _signals_deferred():
            os.replace(tmp, path)
            _LIVE.discard(tmp)
    except BaseException:
        with _signals_deferred():
            _remove(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def write_bytes(path, data: bytes) -> Path:
    """`write_atomic` for bytes in memory."""
    return write_atomic(path, lambda p: p.write_bytes(data))


def is_temp_or_hidden(name: str) -> bool:
    """Dot files (our temp files among them) are never inputs when a folder is listed."""
    return name.startswith(".")
