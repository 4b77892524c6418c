"""Overlap and surface metrics of two binary masks on one voxel grid, in millimetres from the voxel spacing.

Surfaces are the mask voxels removed by one 6-connected erosion (voxels on the array border count as
surface), as in MONAI's ``get_mask_edges``; a surface distance is the Euclidean distance (spacing-aware
distance transform) from a surface voxel of one mask to the nearest surface voxel of the other.

Empty-mask rules (every case is also flagged, see :class:`EmptyState`):

- both masks empty: Dice, NSD, HD95 and ASSD are NaN (undefined: there is nothing to segment);
- exactly one mask empty: Dice = 0 and NSD = 0 (a total miss, or a pure false positive), and HD95 = ASSD =
  the worst case, the diagonal of the grid's field of view (Metrics Reloaded, Maier-Hein et al. 2024: an
  empty prediction gets the largest distance the image allows). No surface distance can be larger, so a
  method that finds nothing ranks below every method that finds something, and it stays in means and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = [
    "EmptyState",
    "SurfaceMetrics",
    "dice",
    "empty_state",
    "fov_diagonal_mm",
    "surface_distances",
    "surface_metrics",
    "surface_voxels",
]

Spacing = tuple[float, float, float]


class EmptyState(str, Enum):
    """Which of the two masks is empty; recorded per case and structure as the ``flag``."""

    NONE = ""
    BOTH = "both_empty"
    REFERENCE = "reference_empty"
    PREDICTION = "prediction_empty"


@dataclass(frozen=True)
class SurfaceMetrics:
    """Dice, 95th-percentile Hausdorff distance (mm), average symmetric surface distance (mm), NSD."""

    dice: float
    hd95: float
    assd: float
    nsd: float
    empty: EmptyState

    @property
    def worst_case(self) -> bool:
        """True when HD95 and ASSD are the worst-case value (exactly one mask empty)."""
        return self.empty in (EmptyState.PREDICTION, EmptyState.REFERENCE)


def empty_state(reference: npt.NDArray[np.bool_], prediction: npt.NDArray[np.bool_]) -> EmptyState:
    """Classify a pair of masks by emptiness."""
    ref_any, pred_any = bool(reference.any()), bool(prediction.any())
    if not ref_any and not pred_any:
        return EmptyState.BOTH
    if not ref_any:
        return EmptyState.REFERENCE
    if not pred_any:
        return EmptyState.PREDICTION
    return EmptyState.NONE


def fov_diagonal_mm(shape: tuple[int, ...], spacing: Spacing) -> float:
    """Diagonal (mm) of a grid's field of view: the distance between two opposite corners' outer faces."""
    return float(np.linalg.norm(np.asarray(shape, np.float64) * np.asarray(spacing, np.float64)))


def dice(reference: npt.NDArray[np.bool_], prediction: npt.NDArray[np.bool_]) -> float:
    """Dice overlap 2|A∩B|/(|A|+|B|); NaN when both masks are empty."""
    total = int(reference.sum()) + int(prediction.sum())
    if total == 0:
        return float("nan")
    return 2.0 * float(np.logical_and(reference, prediction).sum()) / total


def surface_voxels(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The mask's boundary: voxels that a 6-connected erosion removes (array border counts as outside)."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def surface_distances(
    reference: npt.NDArray[np.bool_], prediction: npt.NDArray[np.bool_], spacing: Spacing
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Distances (mm) from each reference surface voxel to the prediction surface, and back.

    Both masks must be non-empty. The work is cropped to the masks' joint bounding box plus a margin,
    which leaves the distances unchanged (the nearest surface voxel always lies inside the box).
    """
    ref_surface, pred_surface = _cropped_surfaces(np.asarray(reference, bool), np.asarray(prediction, bool))
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)
    to_ref = ndimage.distance_transform_edt(~ref_surface, sampling=spacing)
    return to_pred[ref_surface].astype(np.float64), to_ref[pred_surface].astype(np.float64)


def _cropped_surfaces(
    reference: npt.NDArray[np.bool_], prediction: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Surfaces computed on the full grid (border rule intact), then cropped to their joint box."""
    ref_surface, pred_surface = surface_voxels(reference), surface_voxels(prediction)
    union = ref_surface | pred_surface
    box = tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in np.nonzero(union))
    return ref_surface[box], pred_surface[box]


def surface_metrics(
    reference: npt.NDArray[np.bool_],
    prediction: npt.NDArray[np.bool_],
    spacing: Spacing,
    *,
    tolerance_mm: float = 1.0,
    percentile: float = 95.0,
    worst_case_mm: float | None = None,
) -> SurfaceMetrics:
    """Dice, HD95, ASSD and normalised surface Dice at ``tolerance_mm`` (module docstring: empty rules).

    ``worst_case_mm`` is HD95 and ASSD when exactly one mask is empty; None means :func:`fov_diagonal_mm`
    of the masks' grid.

    HD95 is the larger of the two directed 95th percentiles (MONAI's ``directed=False``); ASSD is the mean
    of all distances in both directions; NSD counts surface voxels within the tolerance, in both directions.
    """
    reference = np.asarray(reference, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    state = empty_state(reference, prediction)
    nan = float("nan")
    if state is EmptyState.BOTH:
        return SurfaceMetrics(nan, nan, nan, nan, state)
    if state is not EmptyState.NONE:
        worst = fov_diagonal_mm(reference.shape, spacing) if worst_case_mm is None else float(worst_case_mm)
        return SurfaceMetrics(0.0, worst, worst, 0.0, state)
    ref_to_pred, pred_to_ref = surface_distances(reference, prediction, spacing)
    hd = max(float(np.percentile(ref_to_pred, percentile)), float(np.percentile(pred_to_ref, percentile)))
    both = np.concatenate([ref_to_pred, pred_to_ref])
    nsd = float((both <= tolerance_mm).sum()) / both.size
    return SurfaceMetrics(dice(reference, prediction), hd, float(both.mean()), nsd, state)
