"""Entry point of ``nph <command> [key=value ...]``: compose the config, print it, run, map errors to exit 2."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from omegaconf import OmegaConf

from nph import __version__
from nph.cli.config import compose_config, config_dir, config_name
from nph.cli.registry import COMMANDS, SUBCOMMANDS
from nph.errors import InputError, Interrupted

__all__ = ["main"]

log = logging.getLogger("nph")
EXIT_USAGE = 2
#: stopped early with its state saved (EX_TEMPFAIL): not done, rerun to resume
EXIT_INTERRUPTED = 75


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 bad input, 75 interrupted with its state saved)."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="[nph] %(message)s", stream=sys.stderr)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else EXIT_USAGE
    if args[0] == "--version":
        print(f"nph {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"nph: error: unknown command '{command}' (known: {', '.join(sorted(COMMANDS))})", file=sys.stderr)
        return EXIT_USAGE
    try:
        module = importlib.import_module(COMMANDS[command])
        if any(a in ("-h", "--help") for a in rest):
            print(_command_help(command, module))
            return 0
        overrides = _subcommand_to_override(command, rest)
        cfg = compose_config(command, overrides)
        # One line, so a command's own messages are not buried; the full config at DEBUG level.
        log.info("nph %s %s (experiment: %s) %s", __version__, command, OmegaConf.select(cfg, "experiment"),
                 " ".join(overrides))
        log.debug("config:\n%s", OmegaConf.to_yaml(cfg).rstrip())
        module.run(cfg)
    except InputError as err:
        print(f"nph {command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as stop:
        print(f"nph {command}: interrupted: {stop}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _subcommand_to_override(command: str, rest: list[str]) -> list[str]:
    """``nph nnunet plan k=v`` → overrides ``[action=plan, k=v]``."""
    actions = SUBCOMMANDS.get(command)
    if not actions:
        return rest
    if not rest or "=" in rest[0]:
        raise InputError(f"'nph {command}' needs an action: one of {', '.join(actions)}")
    if rest[0] not in actions:
        raise InputError(f"unknown action '{rest[0]}' for 'nph {command}' (known: {', '.join(actions)})")
    return [f"action={rest[0]}", *rest[1:]]


def _usage() -> str:
    lines = [f"nph {__version__} — labelled brain MRI with enlarged ventricles, synthesised and benchmarked", "",
             "usage: nph <command> [key=value ...]    (Hydra overrides; `nph <command> --help` for options)", "",
             "commands:"]
    for name in sorted(COMMANDS):
        lines.append(f"  {name:<18} {_summary(name)}")
    lines += ["", f"configs: {config_dir()}"]
    return "\n".join(lines)


def _summary(command: str) -> str:
    """First docstring line of the command's module, read from its source: importing torch for --help is slow."""
    spec = importlib.util.find_spec(COMMANDS[command])
    if spec is None or spec.origin is None:
        return "(unavailable: module not found)"
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _command_help(command: str, module: ModuleType) -> str:
    defaults = (config_dir() / f"{config_name(command)}.yaml").read_text()
    return f"{(module.__doc__ or '').strip()}\n\ndefaults (configs/{config_name(command)}.yaml):\n{defaults}"
