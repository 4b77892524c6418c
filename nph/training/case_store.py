"""Training cases read lazily: one memory-mapped store per dataset, shared by every process of a node.

A store is a folder of ``.npy`` files, one per field (labels as uint8, images as float16), each holding
every case. It is built once from the dataset folder under a file lock and renamed into place, so a killed
build leaves nothing half-written and another rank, or the requeued job, opens what the first one built.
Reading maps pages from the OS page cache (file-backed, shared by the ranks, evicted under pressure): a
training process's own (anonymous) memory does not grow with the number of cases. See docs/performance.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from nph.io.atomic import fsync_dir, write_json
from nph.progress import progress

__all__ = [
    "CaseSource",
    "CaseStore",
    "LazyCases",
    "as_tensors",
    "file_lock",
    "files_fingerprint",
    "open_store",
    "publish",
]

log = logging.getLogger(__name__)
STORE_FORMAT = 1
INFO = "store.json"
LOG_EVERY_S = 5.0


class CaseSource(Protocol):
    """Cases of one dataset on one grid: ``fields`` maps a name to (per-case shape, dtype kept in the store)."""

    case_ids: list[str]
    fields: dict[str, tuple[tuple[int, ...], str]]

    def read(self, index: int) -> dict[str, npt.NDArray]:
        """The arrays of case ``index``, checked (grid, value range)."""
        ...

    def fingerprint(self) -> str:
        """Changes whenever a file the cases come from changes."""
        ...


def files_fingerprint(paths: Iterable[Path], extra: Any = None) -> str:
    """SHA-256 over each file's name, size and modification time (no content read), plus ``extra``."""
    digest = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def as_tensors(arrays: Mapping[str, npt.NDArray]) -> dict[str, torch.Tensor]:
    """What a training step gets: integer fields as int64, floating fields as float32 (copies, owned)."""
    out = {}
    for name, array in arrays.items():
        dtype = np.int64 if np.issubdtype(array.dtype, np.integer) else np.float32
        out[name] = torch.from_numpy(np.array(array, dtype=dtype, copy=True))
    return out


class LazyCases(Sequence[dict[str, torch.Tensor]]):
    """Cases read from their files at each access (no store): nothing is held between accesses."""

    def __init__(self, source: CaseSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source.case_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return as_tensors(self.source.read(index))


class CaseStore(Sequence[dict[str, torch.Tensor]]):
    """A built store, memory-mapped read-only; pickles as its path, so DataLoader workers map it themselves."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        info = json.loads((self.folder / INFO).read_text())
        self.case_ids: list[str] = list(info["case_ids"])
        self.fields: list[str] = list(info["fields"])
        self._arrays: dict[str, np.ndarray] | None = None

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {
                name: np.load(self.folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in self.fields
            }
        return self._arrays

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:  # type: ignore[override]
        if not 0 <= index < len(self.case_ids):
            raise IndexError(f"case {index} of {len(self.case_ids)}")
        return as_tensors({name: array[index] for name, array in self.arrays.items()})

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}


def open_store(source: CaseSource, cache_root: Path) -> CaseStore:
    """The store of ``source`` under ``cache_root``, built first if absent (one builder per node, under a lock)."""
    key = source.fingerprint()[:16]
    folder = Path(cache_root) / f"cases-{key}"
    if not (folder / INFO).is_file():
        with file_lock(Path(cache_root) / f".cases-{key}.lock"):
            if not (folder / INFO).is_file():
                _build(source, folder)
    store = CaseStore(folder)
    if store.case_ids != list(source.case_ids):
        raise RuntimeError(f"{folder}: case store lists other cases than {len(source.case_ids)} of the dataset")
    return store


def publish(tmp: Path, folder: Path, marker: str = INFO) -> None:
    """Rename a finished folder into place; if another builder (where locks do not reach) won, keep theirs.

    ``marker`` is the file a finished folder holds (written last).
    """
    try:
        tmp.rename(folder)
    except OSError:
        if not (folder / marker).is_file():
            raise
        log.info("%s: built by another process meanwhile; using that one", folder)
        return
    fsync_dir(folder.parent)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across the processes of a node: the other ranks wait while one builds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(source: CaseSource, folder: Path) -> None:
    """Write every case into a temporary folder beside ``folder``, then rename it into place."""
    count = len(source.case_ids)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        arrays = {
            name: np.lib.format.open_memmap(
                tmp / f"{name}.npy", mode="w+", dtype=np.dtype(dtype), shape=(count, *shape)
            )
            for name, (shape, dtype) in source.fields.items()
        }
        last = time.monotonic()
        for index in progress(range(count), desc="case store", unit="case", in_logs=False):
            for name, array in source.read(index).items():
                arrays[name][index] = array
            if time.monotonic() - last > LOG_EVERY_S:
                log.info("case store: %d of %d cases written to %s", index + 1, count, tmp)
                last = time.monotonic()
        for array in arrays.values():
            array.flush()
        del arrays
        write_json(
            tmp / INFO,
            {
                "format": STORE_FORMAT,
                "fingerprint": source.fingerprint(),
                "case_ids": list(source.case_ids),
                "fields": {n: {"shape": list(s), "dtype": d} for n, (s, d) in source.fields.items()},
            },
        )
        publish(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("case store: %d cases → %s", count, folder)
