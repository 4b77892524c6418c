"""Where nnU-Net keeps its data under one root, and the explicit environment its subprocesses get.

nnU-Net reads ``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results`` at import time, so nph never sets
them in its own process: every nnU-Net call is a subprocess with an ``env=`` dict built here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nph.errors import InputError

__all__ = ["TRAINER_DIR", "NnunetRoot", "dataset_folder_name", "nnunet_env", "split_cpus"]

#: Trainers defined in this repository, found by nnU-Net through ``nnUNet_extTrainer``.
TRAINER_DIR = Path(__file__).resolve().parent / "trainers"
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's ``DatasetXXX_Name`` (id 1..999, name of letters, digits and underscores)."""
    if not 1 <= int(dataset_id) <= 999:
        raise InputError(f"dataset={dataset_id}: nnU-Net dataset ids lie in 1..999")
    if not _NAME_RE.match(name):
        raise InputError(f"name={name!r}: use letters, digits and underscores only")
    return f"Dataset{int(dataset_id):03d}_{name}"


@dataclass(frozen=True)
class NnunetRoot:
    """The three nnU-Net folders derived from one configured root."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "nnUNet_raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "nnUNet_preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "nnUNet_results"

    def find_dataset(self, dataset_id: int) -> str:
        """The ``DatasetXXX_Name`` folder exported for ``dataset_id`` under nnUNet_raw."""
        matches = sorted(self.raw.glob(f"Dataset{int(dataset_id):03d}_*")) if self.raw.is_dir() else []
        if not matches:
            raise InputError(
                f"{self.raw}: no Dataset{int(dataset_id):03d}_* folder (run `nph nnunet export root={self.root} "
                f"dataset={dataset_id} data=[...]` first)"
            )
        if len(matches) > 1:
            raise InputError(f"{self.raw}: several folders for dataset {dataset_id}: {[m.name for m in matches]}")
        return matches[0].name


def split_cpus(cpus: int, device: str) -> tuple[int, int]:
    """(threads for the main process, data-augmentation workers) for an allocation of ``cpus`` cores.

    On CPU the network itself needs the cores, so augmentation runs in-process (0 workers) below 4 cores;
    on a GPU most cores go to augmentation workers, which is what keeps the GPU fed.
    """
    cpus = max(1, int(cpus))
    if device == "cuda":
        workers = max(0, cpus - 2)
        return max(1, cpus - workers), workers
    workers = 0 if cpus < 4 else cpus // 4
    return max(1, cpus - workers), workers


def nnunet_env(
    root: NnunetRoot,
    base_env: Mapping[str, str],
    *,
    threads: int,
    workers: int,
    compile_model: bool = False,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The full environment of an nnU-Net subprocess: ``base_env`` plus nnU-Net's paths, threads and workers."""
    env = dict(base_env)
    env.update(
        {
            "nnUNet_raw": str(root.raw),
            "nnUNet_preprocessed": str(root.preprocessed),
            "nnUNet_results": str(root.results),
            "nnUNet_extTrainer": str(TRAINER_DIR),
            "nnUNet_n_proc_DA": str(int(workers)),
            "nnUNet_def_n_proc": str(max(1, int(workers))),
            "nnUNet_compile": "true" if compile_model else "false",
            "OMP_NUM_THREADS": str(int(threads)),
            "MKL_NUM_THREADS": str(int(threads)),
            "NPH_NNUNET_THREADS": str(int(threads)),  # nph's trainers set torch to it (nnU-Net's CPU entry: all cores)
        }
    )
    env.update(extra or {})
    return env
