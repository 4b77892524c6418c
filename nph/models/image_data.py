"""Training examples for the image models: every (image, label map) pair of a labelled dataset folder, in memory."""

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

__all__ = ["PairData", "load_pairs"]

log = logging.getLogger(__name__)
RANGE_TOLERANCE = 1e-3


@dataclass
class PairData:
    """N examples of ``{"image": (1, X, Y, Z) float32 in [0, 1], "labels": (X, Y, Z) long}`` on one grid."""

    examples: list[dict[str, torch.Tensor]]
    case_ids: list[str]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: npt.NDArray[np.float64]


def load_pairs(root: str | Path, expected_shape: tuple[int, ...] | None = None) -> PairData:
    """Read every case of the dataset at ``root``; all share one grid (``expected_shape`` if given).

    Raises:
        InputError: no images in the dataset, a grid that differs, or intensities outside [0, 1].
    """
    dataset = LabelledDataset(root)
    if not dataset.has_images:
        raise InputError(f"{dataset.paths.dataset_json}: the dataset has no images (the image model needs pairs)")
    examples: list[dict[str, torch.Tensor]] = []
    affine: npt.NDArray[np.float64] | None = None
    shape: tuple[int, int, int] = (0, 0, 0)
    for case_id in dataset.case_ids:
        image, labels = dataset.image(case_id), dataset.label_contiguous(case_id)
        where = dataset.paths.image(case_id)
        if affine is None:
            affine = np.asarray(labels.affine, dtype=np.float64)
            shape = (int(labels.shape[0]), int(labels.shape[1]), int(labels.shape[2]))
            if expected_shape is not None and shape != tuple(expected_shape):
                raise InputError(f"{where}: grid {shape} differs from grid.shape {tuple(expected_shape)} "
                                 "of the experiment config")
        elif labels.shape != shape or not np.allclose(labels.affine, affine, atol=1e-3):
            raise InputError(f"{where}: grid {labels.shape} differs from the first case's {shape}")
        low, high = float(np.min(image.data)), float(np.max(image.data))
        if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE or not np.isfinite(image.data).all():
            raise InputError(f"{where}: intensities span [{low:.3g}, {high:.3g}]; expected [0, 1] "
                             "(scale by the 0.5/99.5 percentiles, as `nph ingest` does)")
        examples.append({"image": torch.from_numpy(np.clip(image.data, 0, 1).astype(np.float32))[None],
                         "labels": torch.from_numpy(labels.data.astype(np.int64))})
    assert affine is not None
    log.info("loaded %d image/label pairs of %s from %s", len(examples), shape, root)
    return PairData(examples, dataset.case_ids, shape, spacing_of(affine), affine)  # type: ignore[arg-type]
