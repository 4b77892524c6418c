"""Atomic writes: a reader (or a killed job) never sees half a file.

Each write goes to a temporary file in the destination folder, is fsynced, then renamed
over the destination with ``os.replace`` (atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "fsync_dir", "remove_leftovers", "write_bytes", "write_json", "write_text"]

TEMP_PREFIX = ".tmp-"


def _umask() -> int:
    """The process umask (reading it means setting it; set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Persist a rename: fsync the folder that holds the new name."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it is fsynced and renamed onto ``dest``.

    The temporary name keeps ``dest``'s suffixes (``.nii.gz`` stays ``.nii.gz``) so libraries that
    choose a format by extension write the right one. On error the temporary file is removed and
    ``dest`` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(dest.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=dest.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; shared cluster storage needs the usual mode
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_leftovers(folder: Path) -> list[Path]:
    """Delete the temporary files a killed writer left in ``folder`` (not below it); returns what went.

    SIGKILL between the write and ``os.replace`` leaves a ``.tmp-*`` file that nothing reads. Call this only when
    no writer can be running in ``folder`` (e.g. once every shard of a run is done), or it takes a live write.
    """
    if not folder.is_dir():
        return []
    leftovers = [f for f in folder.iterdir() if f.name.startswith(TEMP_PREFIX) and f.is_file()]
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def write_bytes(dest: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically and return the path."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text to ``dest`` atomically."""
    return write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``dest`` atomically (NaN is refused: JSON has none)."""
    return write_text(dest, json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    """Let numpy scalars and paths through json.dumps."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")
