"""Sub-commands added by later work (eval, bench, weights, clean): each registers its own parser."""
from __future__ import annotations


def register(sub) -> None:
    return None
