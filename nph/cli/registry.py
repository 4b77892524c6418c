"""Which module runs each ``nph <command>``; its config is ``configs/<command with _>.yaml``.

Each module defines ``run(cfg: DictConfig) -> None`` and a docstring that ``--help`` prints.
"""

from __future__ import annotations

__all__ = ["COMMANDS", "SUBCOMMANDS"]

COMMANDS: dict[str, str] = {
    "phantom": "nph.cli.commands.phantom",
    "ingest": "nph.cli.commands.ingest",
}

#: Commands whose next word picks an action, passed on as ``action=<word>``.
SUBCOMMANDS: dict[str, tuple[str, ...]] = {}
