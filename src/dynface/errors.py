"""The one base class of the errors dynface reports to a person as a message, not a traceback.

Every error class of the library derives from `DynfaceError` (and, where callers already caught
it so, from the built-in it used to be: `WeightsError` is still a `RuntimeError`, `NetworkCheckError`
a `ValueError`). The command line recognises them by this type (cli/guard.py) and prints the message.
"""
from __future__ import annotations


class DynfaceError(Exception):
    """A known failure with a message meant for the user (bad input, missing or broken model files...)."""
