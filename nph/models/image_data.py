"""Training examples for the image models: the (image, label map) pairs of a labelled dataset folder, read lazily.

With a cache folder the pairs come from one memory-mapped store (float16 images, uint8 labels;
``nph.training.case_store``) built once; without one each access reads its files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from nph.errors import InputError
from nph.io.nifti import spacing_of
from nph.models.mask_data import MaskCases
from nph.training.case_store import LazyCases, open_store

__all__ = ["PairCases", "PairData", "load_pairs"]

log = logging.getLogger(__name__)
RANGE_TOLERANCE = 1e-3


class PairCases(MaskCases):
    """Images in [0, 1] with their label maps, as a case source (the store keeps images as float16)."""

    def __init__(self, root: Path, expected_shape: tuple[int, ...] | None = None) -> None:
        super().__init__(root, expected_shape)
        if not self.dataset.has_images:
            raise InputError(f"{self.dataset.paths.dataset_json}: the dataset has no images (the image model "
                             "needs pairs)")
        self.fields = {"image": ((1, *self.shape), "float16"), "labels": (self.shape, "uint8")}

    def files(self, case_id: str) -> list[Path]:
        return [self.dataset.paths.image(case_id), self.dataset.paths.label(case_id)]

    def read(self, index: int) -> dict[str, npt.NDArray]:
        labels = self.labels(index)
        image = self.dataset.image(self.case_ids[index])
        low, high = float(np.min(image.data)), float(np.max(image.data))
        if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE or not np.isfinite(image.data).all():
            raise InputError(f"{self.dataset.paths.image(self.case_ids[index])}: intensities span "
                             f"[{low:.3g}, {high:.3g}]; expected [0, 1] (scale by the 0.5/99.5 percentiles, "
                             "as `nph ingest` does)")
        return {"image": np.clip(image.data, 0, 1).astype(np.float32)[None], "labels": labels.data.astype(np.uint8)}


@dataclass
class PairData:
    """N examples of ``{"image": (1, X, Y, Z) float32 in [0, 1], "labels": (X, Y, Z) long}`` on one grid."""

    examples: Sequence[dict[str, torch.Tensor]]
    case_ids: list[str]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: npt.NDArray[np.float64]


def load_pairs(root: str | Path, expected_shape: tuple[int, ...] | None = None,
               cache: Path | None = None) -> PairData:
    """The cases of the dataset at ``root`` (one grid, ``expected_shape`` if given); see :func:`load_masks`.

    Raises:
        InputError: no images in the dataset, a grid that differs, or intensities outside [0, 1] (when the
            store is built, or when a case is read).
    """
    source = PairCases(Path(root), expected_shape)
    examples = open_store(source, cache) if cache is not None else LazyCases(source)
    log.info("%d image/label pairs of %s from %s (%s)", len(examples), source.shape, root,
             f"store in {cache}" if cache is not None else "read on access")
    return PairData(examples, source.case_ids, source.shape, spacing_of(source.affine), source.affine)
