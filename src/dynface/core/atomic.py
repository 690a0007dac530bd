"""The one atomic file writer: a dot-named temp file in the target's folder, fsync, rename, fsync
the folder. The temp file is removed on every exit path: an exception, Ctrl-C, and SIGTERM/SIGHUP
while `signals_as_exceptions` turns them into exceptions (the CLI runs every command inside it).

Only SIGKILL or a power cut can leave a temp file behind; its name starts with `TEMP_PREFIX`
(a dot file) and every folder reader (`imageio.list_images`) skips dot files, so it is never
read as an image. The name carries the writer's host and process id
(`.tmp-<host>-<pid>-<random><ext>`), so a later run on the same host removes the leftovers of
dead writers (`sweep_temp_files`) and never a live writer's file (another host's only once it is
a day old), nor a user's own dot file.

A batch names the files it must never replace (`protect`): `write_atomic` refuses a target whose
real path is one of them, whatever symlinks lie between the output folder and the file.
"""
from __future__ import annotations

import atexit
import os
import re
import signal
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

from dynface.errors import DynfaceError

TEMP_PREFIX = ".tmp-"
_TEMP_NAME = re.compile(r"^\.tmp-([0-9a-f]{6})-(\d+)-[A-Za-z0-9_]{8}")  # what write_atomic names its temp files
_OLD_TEMP_NAME = re.compile(r"^\.tmp-[a-z0-9_]{8}(\.[A-Za-z0-9]+)?$")  # what it named them before the pid
_LIVE: set[str] = set()  # temp files being written now (removed at exit if an unwinding was skipped)
_PROTECTED: set[str] = set()  # real paths no write may replace (a batch's inputs)


class OverwriteRefused(DynfaceError, ValueError):
    """A write whose target is (through symlinks or not) a file the batch protects, e.g. an input."""


def _real(path) -> str:
    return os.path.realpath(os.path.abspath(path))


@contextmanager
def protect(paths: Iterable):
    """While inside, `write_atomic` refuses to replace any of `paths` (compared by real path)."""
    added = {_real(p) for p in paths} - _PROTECTED
    _PROTECTED.update(added)
    try:
        yield
    finally:
        _PROTECTED.difference_update(added)


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
    if _PROTECTED and _real(path) in _PROTECTED:
        raise OverwriteRefused(f"{path}: is an input of this run (through a link); refusing to overwrite it")
    with _signals_deferred():  # created and registered as one step
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{_host_tag()}-{os.getpid()}-", suffix=path.suffix,
                                   dir=path.parent)
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
            if _PROTECTED and _real(path) in _PROTECTED:  # a link swapped in while the file was written
                raise OverwriteRefused(f"{path}: is an input of this run (through a link); refusing to overwrite it")
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


def _host_tag() -> str:
    import hashlib
    import socket

    return hashlib.sha1(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:6]


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process
    return True


STALE_TEMP_S = 24 * 3600  # a temp file of ours untouched this long is a leftover even if its pid was reused


def sweep_temp_files(folder, depth: int = 1) -> list[Path]:
    """Remove the temp files that killed writers left in `folder` (and its subfolders, `depth` deep):
    only names `write_atomic` makes, only when their process (on this host) is gone or they are a
    day old, so a concurrent run's file being written and a user's own dot files stay. Returns what
    was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                if depth > 0 and not e.name.startswith("."):
                    removed += sweep_temp_files(e.path, depth - 1)
                continue
            m = _TEMP_NAME.match(e.name)
            if not (m or _OLD_TEMP_NAME.match(e.name)) or not e.is_file(follow_symlinks=False):
                continue
            old = now - e.stat(follow_symlinks=False).st_mtime >= STALE_TEMP_S
            dead = m is not None and m.group(1) == _host_tag() and not _pid_alive(int(m.group(2)))
            if not (old or dead):
                continue
            os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError:
            continue
    return removed
