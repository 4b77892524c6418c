"""Anatomical defects of a generated label map (SynthSeg ids): what a faster sampler must not add.

Three checks, each true when the map is defective:

- ``missing_labels``: a required label (by default all 33 SynthSeg labels, which every phantom and every
  SynthSeg map of a whole head holds) is absent.
- ``disconnected_ventricles``: a lateral ventricle (4 or 43) has more than :data:`FRAGMENT_SHARE` of its voxels
  outside its largest 26-connected component (real lateral ventricles are one piece each).
- ``white_matter_holes``: a cavity enclosed by a hemisphere's cerebral white matter (2 or 41; in 3-D, the
  voxels ``binary_fill_holes`` adds) holds background or cerebral cortex (3 or 42) — tissue that lies outside
  the white matter. Deep grey matter, hippocampus, amygdala or ventricles inside it are anatomy, not holes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from nph.data.labels import LABEL_IDS

__all__ = ["CHECKS", "FRAGMENT_SHARE", "defects"]

#: A lateral ventricle is disconnected when more than this share of it lies outside its largest component.
FRAGMENT_SHARE = 0.05
LATERAL_VENTRICLES = (4, 43)
WHITE_MATTER = (2, 41)
OUTSIDE_WHITE_MATTER = (0, 3, 42)
CHECKS = ("missing_labels", "disconnected_ventricles", "white_matter_holes")
_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def _missing(label_ids: npt.NDArray[np.integer], required: Iterable[int]) -> bool:
    return bool(set(required) - set(np.unique(label_ids).tolist()))


def _disconnected(label_ids: npt.NDArray[np.integer]) -> bool:
    for label in LATERAL_VENTRICLES:
        components, count = ndimage.label(label_ids == label, structure=_CONNECTIVITY)
        if count > 1:
            sizes = np.bincount(components.ravel())[1:]
            if 1.0 - sizes.max() / sizes.sum() > FRAGMENT_SHARE:
                return True
    return False


def _holes(label_ids: npt.NDArray[np.integer]) -> bool:
    outside = np.isin(label_ids, OUTSIDE_WHITE_MATTER)
    for label in WHITE_MATTER:
        white = label_ids == label
        cavities = ndimage.binary_fill_holes(white) & ~white
        if bool((cavities & outside).any()):
            return True
    return False


def defects(label_ids: npt.NDArray[np.integer], required: Iterable[int] = LABEL_IDS) -> dict[str, bool]:
    """Which of :data:`CHECKS` a label map (X, Y, Z) in SynthSeg ids fails (True = defect)."""
    if label_ids.ndim != 3:
        raise ValueError(f"defects: expected one label map (X, Y, Z), got shape {label_ids.shape}")
    return {
        "missing_labels": _missing(label_ids, required),
        "disconnected_ventricles": _disconnected(label_ids),
        "white_matter_holes": _holes(label_ids),
    }
