"""Opening files a stranger may have put there: regular files only, never waited on, size-capped.

A FIFO named `manifest.json`, a weight file or a YAML config would block `open()` forever, and a
sparse multi-gigabyte "JSON" file would be read whole before the parser fails. `open_regular`
opens without blocking and refuses anything that is not a regular file; `read_regular` also
refuses a file over a byte cap before reading it. Both raise `FileRefused`, one line naming the path.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from dynface.errors import DynfaceError


def expand(path) -> str:
    """A config path with $VARIABLES and ~ expanded; an unset variable is an error, not a literal."""
    out = os.path.expanduser(os.path.expandvars(str(path)))
    if "$" in out:
        raise ValueError(f"{path}: names an environment variable that is not set")
    return out


class FileRefused(DynfaceError, ValueError):
    """A path that is not a readable regular file (or is over its size cap), said in one line."""


def _kind(mode: int) -> str:
    return ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")


def open_regular(path, what: str = "a file"):
    """A binary file object for a regular file; FileRefused for anything else (never blocks)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileRefused(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FileRefused(f"{path}: is a folder, not {what}") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise FileRefused(f"{path}: is a symlink loop, not {what}") from None
        raise FileRefused(f"{path}: cannot open ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise FileRefused(f"{path}: is {_kind(mode)}, not {what}; refused")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def check_regular(path, what: str = "a file") -> Path:
    """`path` when it is a regular file (checked without opening it for long); FileRefused otherwise."""
    with open_regular(path, what):
        pass
    return Path(path)


def read_regular(path, max_bytes: int, what: str = "a file") -> bytes:
    """The bytes of a regular file of at most `max_bytes` (its size is checked before reading)."""
    with open_regular(path, what) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise FileRefused(f"{path}: {size:,} bytes is too large for {what} (at most {max_bytes:,}); refused")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileRefused(f"{path}: too large for {what} (over {max_bytes:,} bytes); refused")
    return data
