"""Training examples for the mask models: every label map of a labelled dataset folder, held in memory."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from nph.data.dataset import LabelledDataset
from nph.errors import InputError
from nph.io.nifti import spacing_of

__all__ = ["MaskData", "load_masks"]

log = logging.getLogger(__name__)


@dataclass
class MaskData:
    """Label maps as contiguous indices (N examples of ``{"labels": (X, Y, Z) long}``) and their measures."""

    examples: list[dict[str, torch.Tensor]]
    ventricle_fraction: npt.NDArray[np.float64]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: npt.NDArray[np.float64]


def load_masks(root: Path, expected_shape: tuple[int, ...] | None = None) -> MaskData:
    """Read every label map of the dataset at ``root``; all must share one grid (``expected_shape`` if given)."""
    dataset = LabelledDataset(root)
    examples, affine = [], None
    for case_id in dataset.case_ids:
        volume = dataset.label_contiguous(case_id)
        if affine is None:
            affine = volume.affine
            shape = tuple(int(s) for s in volume.shape)
            if expected_shape is not None and shape != tuple(expected_shape):
                raise InputError(f"{dataset.paths.label(case_id)}: grid {shape} differs from grid.shape "
                                 f"{tuple(expected_shape)} of the experiment config")
        elif volume.shape != shape or not np.allclose(volume.affine, affine, atol=1e-3):
            raise InputError(f"{dataset.paths.label(case_id)}: grid {volume.shape} differs from the first case's")
        examples.append({"labels": torch.from_numpy(volume.data.astype(np.int64))})
    fractions = dataset.manifest["ventricle_fraction"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(fractions)):
        raise InputError(f"{dataset.paths.manifest}: ventricle_fraction has missing or non-finite values")
    assert affine is not None
    log.info("loaded %d label maps of %s from %s", len(examples), shape, root)
    grid = (int(shape[0]), int(shape[1]), int(shape[2]))
    return MaskData(examples, fractions, grid, spacing_of(affine), np.asarray(affine, dtype=np.float64))
