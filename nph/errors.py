"""The one exception type that means "the user gave us something unusable"."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input from the user: the command prints its one-line message and exits with status 2.

    The message names the file or config key and what is wrong with it, so no traceback is needed.
    """
