"""``python -m launch <command> [action] key=value ...``: the launcher's own keys, split from the command's.

Launcher keys are listed in :data:`LAUNCH_DEFAULTS`; ``cluster.<key>=value`` overrides one key of the cluster
profile; everything else is passed to ``nph <command>`` unchanged (relative paths made absolute).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from launch.container import absolute_paths
from nph.cli.registry import COMMANDS, SUBCOMMANDS
from nph.errors import InputError

__all__ = [
    "LAUNCH_DEFAULTS",
    "OUTPUT_KEYS",
    "LaunchRequest",
    "default_cluster",
    "job_ids",
    "launch_folder",
    "parse_request",
    "writer_job_name",
]

#: The launcher's keys and their defaults (``cluster`` defaults to slurm where sbatch exists, else local).
LAUNCH_DEFAULTS: dict[str, Any] = {
    "cluster": None,
    "container": None,
    "shards": None,
    "shard_arg": "shard",
    "wait": None,
    "max_array_size": None,
    "apptainer": "apptainer",
    "job_name": None,
    "launch_dir": None,
    "dry_run": False,
    "after": None,
}
#: Where ``<out>/launch/jobs.json`` goes when ``launch_dir`` is not given: the first of these keys present.
OUTPUT_KEYS = ("out", "models", "root")
#: In the command's values, replaced per task by its index and the task count (``out=runs/task_{k} seed={k}``).
TEMPLATES = ("{k}", "{K}")
#: A SLURM job id as ``after=`` takes it: an array (``123``) or one of its tasks (``123_4``).
_JOB_ID = re.compile(r"\d+(_\d+)?")


def default_cluster() -> str:
    return "slurm" if shutil.which("sbatch") else "local"


@dataclass
class LaunchRequest:
    """A parsed launcher command line."""

    command: str
    nph_args: list[str]
    cluster: str = "local"
    cluster_overrides: dict[str, Any] = field(default_factory=dict)
    container: Path | None = None
    shards: int | None = None
    shard_arg: str = "shard"
    wait: bool | None = None
    max_array_size: int | None = None
    apptainer: str = "apptainer"
    job_name: str = ""
    launch_dir: Path = Path("launch")
    dry_run: bool = False
    after: list[str] = field(default_factory=list)  # SLURM job ids that must complete OK first (afterok)

    @property
    def num_tasks(self) -> int:
        return self.shards or 1

    def task_args(self, index: int) -> list[str]:
        """The ``nph`` arguments of task ``index``: templates filled, ``shard=k/K`` added when sharded."""
        args = [a.replace("{k}", str(index)).replace("{K}", str(self.num_tasks)) for a in self.nph_args]
        if self.shards is not None and self.shard_arg:
            args.append(f"{self.shard_arg}={index}/{self.shards}")
        return [self.command, *args]


def _value(key: str, raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as err:
        raise InputError(f"{key}={raw}: not a valid value ({' '.join(str(err).split())})") from err


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{key}={value}: must be an integer ≥ {minimum}")
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{key}={value}: must be true or false")
    return value


def job_ids(key: str, raw: str) -> list[str]:
    """``after=123,124_0`` → ``["123", "124_0"]``; empty → ``[]``.

    Raises:
        InputError: a part that is not a SLURM job id.
    """
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    bad = [part for part in ids if not _JOB_ID.fullmatch(part)]
    if bad:
        raise InputError(f"{key}={raw}: not a SLURM job id: {', '.join(bad)} (expected e.g. {key}=1234,1235_0)")
    return ids


def launch_folder(explicit: Any, nph_args: Sequence[str], cwd: Path) -> Path:
    """``launch_dir=`` if given, else ``<out>/launch`` (for a templated out, beside the per-task folders)."""
    if explicit is not None:
        return (cwd / str(explicit)).resolve()
    values = dict(override.partition("=")[::2] for override in nph_args)
    for key in OUTPUT_KEYS:  # in priority order: out= wins over models= wherever it stands
        if values.get(key):
            path = Path(values[key])
            while any(t in str(path) for t in TEMPLATES):
                path = path.parent
            return path.resolve() / "launch"
    keys = ", ".join(OUTPUT_KEYS)
    raise InputError(f"no output folder to keep the job records in: pass one of {keys} or launch_dir=")


def writer_job_name(nph_args: Sequence[str]) -> str | None:
    """``nph-<folder>-<hash>``, one name per output folder (``train``: per ``models/<stage>``).

    Every job the launcher submits carries ``--dependency=singleton``, so two submissions writing into one
    folder run one after the other, never side by side. None when no output key is given.
    """
    values = dict(override.partition("=")[::2] for override in nph_args)
    folder = next((values[key] for key in OUTPUT_KEYS if values.get(key)), None)
    if folder is None:
        return None
    path = Path(folder)
    while any(t in str(path) for t in TEMPLATES):
        path = path.parent
    if values.get("stage"):
        path = path / values["stage"]
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    return f"nph-{re.sub(r'[^A-Za-z0-9_.-]', '_', path.name)[:40]}-{digest}"


def parse_request(argv: Sequence[str], cwd: Path | None = None) -> LaunchRequest:
    """Split ``argv`` (after ``python -m launch``) into launcher settings and the ``nph`` command line.

    Raises:
        InputError: unknown command, missing action, a bad launcher value, missing container or apptainer.
    """
    cwd = cwd or Path.cwd()
    if not argv or "=" in argv[0]:
        raise InputError(f"usage: python -m launch <command> key=value ... (commands: {', '.join(sorted(COMMANDS))})")
    command, rest = argv[0], list(argv[1:])
    if command not in COMMANDS:
        raise InputError(f"unknown command '{command}' (known: {', '.join(sorted(COMMANDS))})")
    nph_args: list[str] = []
    if command in SUBCOMMANDS:
        if not rest or rest[0] not in SUBCOMMANDS[command]:
            raise InputError(f"'{command}' needs an action first: one of {', '.join(SUBCOMMANDS[command])}")
        nph_args.append(rest.pop(0))
    settings = dict(LAUNCH_DEFAULTS)
    cluster_overrides: dict[str, Any] = {}
    for item in rest:
        key, sep, raw = item.partition("=")
        if not sep:
            raise InputError(f"'{item}': expected key=value")
        if key.startswith("cluster."):
            cluster_overrides[key.removeprefix("cluster.")] = _value(key, raw)
        elif key in LAUNCH_DEFAULTS:
            settings[key] = _value(key, raw) if key not in ("container", "launch_dir", "apptainer", "after") else raw
        else:
            nph_args.append(item)
    nph_args = absolute_paths(nph_args, cwd)
    return _request(command, nph_args, settings, cluster_overrides, cwd)


def _request(
    command: str, nph_args: list[str], s: dict[str, Any], overrides: dict[str, Any], cwd: Path
) -> LaunchRequest:
    container = None
    if s["container"]:
        container = (cwd / str(s["container"])).resolve()
        if not container.is_file():
            raise InputError(f"container={s['container']}: image file not found at {container}")
        found = shutil.which(str(s["apptainer"]))
        if found is None:
            raise InputError(f"apptainer={s['apptainer']}: not found (install Apptainer or pass apptainer=PATH)")
        s["apptainer"] = str(Path(found).resolve())
    return LaunchRequest(
        command=command,
        nph_args=nph_args,
        cluster=str(s["cluster"] or default_cluster()),
        cluster_overrides=overrides,
        container=container,
        shards=None if s["shards"] is None else _int("shards", s["shards"], 1),
        shard_arg=str(s["shard_arg"] or ""),
        wait=None if s["wait"] is None else _bool("wait", s["wait"]),
        max_array_size=None if s["max_array_size"] is None else _int("max_array_size", s["max_array_size"], 1),
        apptainer=str(s["apptainer"]),
        job_name=str(s["job_name"] or writer_job_name(nph_args) or f"nph-{command}"),
        launch_dir=launch_folder(s["launch_dir"], nph_args, cwd),
        dry_run=_bool("dry_run", s["dry_run"]),
        after=job_ids("after", str(s["after"] or "")),
    )
