"""`deprecate()`: a name kept for old callers warns once per call site, with the version that removes it.

As in diffusers (`diffusers.utils.deprecate`): the warning is a FutureWarning that says what to use
instead, and once the package's version reaches the removal version the call is an error, so a
forgotten alias cannot outlive its announced removal.
"""
from __future__ import annotations

import warnings


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def deprecate(name: str, removal: str, instead: str, stacklevel: int = 3) -> None:
    """Warn that `name` is deprecated and goes in version `removal`; `instead` says what replaces it.
    Raises RuntimeError when the installed version is already `removal` or later."""
    from dynface import __version__

    if _version_tuple(__version__) >= _version_tuple(removal):
        raise RuntimeError(f"{name} was to be removed in dynface {removal} (this is {__version__}): remove it")
    warnings.warn(f"{name} is deprecated and will be removed in dynface {removal}: {instead}", FutureWarning,
                  stacklevel=stacklevel)
