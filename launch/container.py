"""The command line of one task: ``python -m nph ...`` on the host, or ``apptainer exec --nv`` inside an image.

Paths named in the overrides are made absolute (a task may start in another folder) and bound into the
container at the same place, with the launcher's own folder. ``--cleanenv``: the host's environment (its
PYTHONPATH, conda, module settings) stays out of the image; what the command needs (SLURM_*, CUDA_VISIBLE_DEVICES,
the DDP rendezvous, W&B settings, the cache folders) is passed in by name as ``APPTAINERENV_<name>``, which
Apptainer sets inside even with ``--cleanenv`` (:func:`container_environment`). Caches that default to
``$HOME`` (Triton, Inductor, matplotlib, W&B, XDG) go under the launch folder (:func:`cache_environment`).
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml

__all__ = [
    "CACHE_VARIABLES",
    "PASSED_NAMES",
    "PASSED_PREFIXES",
    "PATH_KEYS",
    "absolute_paths",
    "bind_folders",
    "cache_environment",
    "container_environment",
    "task_argv",
]

#: Variables that cross ``--cleanenv`` into the image: these names, and every name with these prefixes.
PASSED_NAMES = frozenset(
    {
        "CUDA_VISIBLE_DEVICES",
        "GPU_DEVICE_ORDINAL",
        "MASTER_ADDR",
        "MASTER_PORT",
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "TZ",
        "TMPDIR",
        "XDG_CACHE_HOME",
        "TRITON_CACHE_DIR",
        "TORCHINDUCTOR_CACHE_DIR",
        "MPLCONFIGDIR",
    }
)
PASSED_PREFIXES = ("SLURM_", "SUBMITIT_", "WANDB_")
#: Cache variables set to ``<launch folder>/cache/<sub>`` unless the environment already names a place.
CACHE_VARIABLES = {
    "XDG_CACHE_HOME": "xdg",
    "TRITON_CACHE_DIR": "triton",
    "TORCHINDUCTOR_CACHE_DIR": "inductor",
    "MPLCONFIGDIR": "matplotlib",
    "WANDB_CACHE_DIR": "wandb/cache",
    "WANDB_CONFIG_DIR": "wandb/config",
    "WANDB_DATA_DIR": "wandb/data",
}

#: Override keys whose values are files or folders (DESIGN.md's command table).
PATH_KEYS = frozenset(
    {
        "out",
        "data",
        "models",
        "masks",
        "images",
        "labels",
        "root",
        "input",
        "reference",
        "predictions",
        "real",
        "synthetic",
        "weights",
    }
)


def _split(override: str) -> tuple[str, str] | None:
    key, sep, value = override.partition("=")
    return (key.lstrip("+~"), value) if sep else None


def _path_values(value: str) -> list[str]:
    """The paths in one override value: a path, a glob, ``[a,b]`` or ``{name: path}``."""
    if value.startswith(("[", "{")):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return []
        items = parsed.values() if isinstance(parsed, dict) else parsed if isinstance(parsed, list) else []
        return [str(v) for v in items if isinstance(v, str | Path)]
    return [value] if value and value.lower() not in ("null", "none", "???") else []


def _absolute(value: str, cwd: Path) -> str:
    return value if os.path.isabs(value) else str((cwd / value).resolve())


def absolute_paths(overrides: Sequence[str], cwd: Path) -> list[str]:
    """``out=runs/a`` → ``out=<cwd>/runs/a`` for every path key; other overrides pass unchanged."""
    result = []
    for override in overrides:
        split = _split(override)
        if split is None or split[0] not in PATH_KEYS or split[1].startswith(("[", "{")) or not _path_values(split[1]):
            result.append(override)
            continue
        key = override.partition("=")[0]
        result.append(f"{key}={_absolute(split[1], cwd)}")
    return result


def _existing_folder(path: str) -> Path:
    """The folder to bind for ``path``: itself if it is a folder, else its nearest existing ancestor."""
    parts = Path(path).parts
    if glob.has_magic(path):  # images=/data/*.nii.gz: bind the folder above the first wildcard
        parts = parts[: next(i for i, part in enumerate(parts) if glob.has_magic(part))]
    candidate = Path(*parts) if parts else Path("/")
    while not candidate.is_dir() and candidate != candidate.parent:
        candidate = candidate.parent
    return candidate


def bind_folders(overrides: Sequence[str], extra: Iterable[Path], cwd: Path) -> list[Path]:
    """Folders to bind: those of every path override plus ``extra``, without ones inside another or ``/``."""
    folders = {_existing_folder(str(Path(p).resolve())).resolve() for p in extra}
    for override in overrides:
        split = _split(override)
        if split and split[0] in PATH_KEYS:
            folders.update(_existing_folder(_absolute(v, cwd)).resolve() for v in _path_values(split[1]))
    folders.discard(Path("/"))
    ordered = sorted(folders, key=lambda p: (len(p.parts), str(p)))
    kept: list[Path] = []
    for folder in ordered:
        if not any(folder.is_relative_to(k) for k in kept):
            kept.append(folder)
    return kept


def cache_environment(cache_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Cache folders under ``cache_dir`` (created) for each cache variable ``environ`` does not set already."""
    chosen = {key: cache_dir / sub for key, sub in CACHE_VARIABLES.items() if not environ.get(key)}
    for folder in chosen.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {key: str(folder) for key, folder in chosen.items()}


def container_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``APPTAINERENV_<name>`` for each variable of ``environ`` that must reach the command inside the image."""
    return {
        f"APPTAINERENV_{key}": value
        for key, value in environ.items()
        if key in PASSED_NAMES or key.startswith(PASSED_PREFIXES)
    }


def task_argv(
    nph_args: Sequence[str],
    container: Path | None = None,
    binds: Sequence[Path] = (),
    apptainer: str = "apptainer",
    python: str | None = None,
) -> list[str]:
    """The argument list one task executes (never a shell string)."""
    if container is None:
        return [python or sys.executable, "-m", "nph", *nph_args]
    bind = ",".join(str(b) for b in binds)
    binding = ["--bind", bind] if bind else []
    return [apptainer, "exec", "--nv", "--cleanenv", *binding, str(container), "nph", *nph_args]
