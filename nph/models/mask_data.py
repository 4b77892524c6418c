"""Training examples for the mask models: the label maps of a labelled dataset folder, read lazily.

With a cache folder the cases come from one memory-mapped uint8 store (``nph.training.case_store``), built
once; without one each access reads its file. Either way memory does not grow with the number of cases.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from nph.data.dataset import LabelledDataset
from nph.data.labels import NUM_CLASSES
from nph.errors import InputError
from nph.io.nifti import Volume, spacing_of
from nph.training.case_store import LazyCases, files_fingerprint, open_store

__all__ = ["MaskCases", "MaskData", "load_masks"]

log = logging.getLogger(__name__)


class MaskCases:
    """The label maps of a dataset folder as a case source: one grid (the first case's), values 0..32."""

    def __init__(self, root: Path, expected_shape: tuple[int, ...] | None = None) -> None:
        self.dataset = LabelledDataset(root)
        self.case_ids = self.dataset.case_ids
        first = self.dataset.label_contiguous(self.case_ids[0])
        self.shape = (int(first.shape[0]), int(first.shape[1]), int(first.shape[2]))
        self.affine = np.asarray(first.affine, dtype=np.float64)
        if expected_shape is not None and self.shape != tuple(expected_shape):
            raise InputError(f"{self.dataset.paths.label(self.case_ids[0])}: grid {self.shape} differs from "
                             f"grid.shape {tuple(expected_shape)} of the experiment config")
        self.fields: dict[str, tuple[tuple[int, ...], str]] = {"labels": (self.shape, "uint8")}

    def files(self, case_id: str) -> list[Path]:
        return [self.dataset.paths.label(case_id)]

    def fingerprint(self) -> str:
        paths = [self.dataset.paths.manifest, self.dataset.paths.dataset_json]
        paths += [p for case_id in self.case_ids for p in self.files(case_id)]
        return files_fingerprint(paths, {"fields": self.fields, "affine": self.affine.round(4).tolist()})

    def labels(self, index: int) -> Volume:
        """Case ``index``'s label map, checked to lie on the first case's grid and to hold 0..32."""
        case_id = self.case_ids[index]
        volume = self.dataset.label_contiguous(case_id)
        where = self.dataset.paths.label(case_id)
        if volume.shape != self.shape or not np.allclose(volume.affine, self.affine, atol=1e-3):
            raise InputError(f"{where}: grid {volume.shape} differs from the first case's {self.shape}")
        if volume.data.min() < 0 or volume.data.max() >= NUM_CLASSES:
            raise InputError(f"{where}: label indices outside 0..{NUM_CLASSES - 1}")
        return volume

    def read(self, index: int) -> dict[str, npt.NDArray]:
        return {"labels": self.labels(index).data.astype(np.uint8)}


@dataclass
class MaskData:
    """N examples of ``{"labels": (X, Y, Z) long}`` (read on access), their case ids and measures."""

    examples: Sequence[dict[str, torch.Tensor]]
    case_ids: list[str]
    ventricle_fraction: npt.NDArray[np.float64]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: npt.NDArray[np.float64]


def load_masks(root: Path, expected_shape: tuple[int, ...] | None = None, cache: Path | None = None) -> MaskData:
    """The label maps of the dataset at ``root`` (all on one grid, ``expected_shape`` if given).

    Args:
        root: a labelled dataset folder.
        expected_shape: the experiment's grid; another one is an error.
        cache: folder for the memory-mapped store (built once, then reused); None reads each file on access.
    """
    source = MaskCases(Path(root), expected_shape)
    fractions = source.dataset.manifest["ventricle_fraction"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(fractions)):
        raise InputError(f"{source.dataset.paths.manifest}: ventricle_fraction has missing or non-finite values")
    examples = open_store(source, cache) if cache is not None else LazyCases(source)
    log.info("%d label maps of %s from %s (%s)", len(examples), source.shape, root,
             f"store in {cache}" if cache is not None else "read on access")
    return MaskData(examples, source.case_ids, fractions, source.shape, spacing_of(source.affine), source.affine)
