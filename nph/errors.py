"""The one exception type that means "the user gave us something unusable"."""

from __future__ import annotations

__all__ = ["InputError", "Interrupted"]


class InputError(ValueError):
    """Bad input from the user: the command prints its one-line message and exits with status 2.

    The message names the file or config key and what is wrong with it, so no traceback is needed.
    """


class Interrupted(RuntimeError):
    """Work stopped by a signal after saving its state: the command exits with status 75 (EX_TEMPFAIL), so a
    scheduler's ``afterok`` never releases a stage whose artifact does not exist yet; rerun to resume."""
