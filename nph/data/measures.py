"""Clinical measurements from a SynthSeg-id label map: ventricle and intracranial volume, Evans index.

All sizes come from the voxel spacing of the affine, so anisotropic grids measure correctly.
The Evans index reads directions from RAS+ arrays (axis 0 left→right, 1 posterior→anterior, 2 inferior→superior);
an array in another orientation (e.g. from a model trained on IPL arrays, ``nph import-thesis``) is reoriented
by its affine first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

from nph.data.labels import ventricle_mask
from nph.io.nifti import spacing_of

__all__ = [
    "LATERAL_VENTRICLE_IDS",
    "Measurements",
    "evans_index",
    "frontal_horn_width",
    "measure",
    "skull_width_mm",
    "to_ras",
    "voxel_volume_ml",
]

#: Left and right lateral ventricles: the frontal horns belong to them.
LATERAL_VENTRICLE_IDS = (4, 43)


@dataclass(frozen=True)
class Measurements:
    """What the manifest records for each label map."""

    ventricle_ml: float
    icv_ml: float
    ventricle_fraction: float
    evans_index: float


def voxel_volume_ml(affine: npt.NDArray) -> float:
    """Volume of one voxel in millilitres (1 mL = 1000 mm³)."""
    return float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3]))) / 1000.0


def measure(label_ids: npt.NDArray[np.integer], affine: npt.NDArray) -> Measurements:
    """Ventricle volume, ICV (every non-background voxel), their ratio, and the Evans index."""
    voxel_ml = voxel_volume_ml(affine)
    ventricle_ml = float(ventricle_mask(label_ids).sum()) * voxel_ml
    icv_ml = float((label_ids != 0).sum()) * voxel_ml
    fraction = ventricle_ml / icv_ml if icv_ml > 0 else float("nan")
    return Measurements(ventricle_ml, icv_ml, fraction, evans_index(label_ids, affine))


def evans_index(label_ids: npt.NDArray[np.integer], affine: npt.NDArray) -> float:
    """Evans index: maximal frontal-horn width over the maximal inner skull width on the same axial slice.

    Frontal horns and widths as in :func:`frontal_horn_width`; the inner skull width is the widest
    left-right span of intracranial (non-background) voxels on the slice where the horns are widest
    (:func:`skull_width_mm`). Returns NaN when there are no lateral ventricles.
    """
    label_ids, affine = to_ras(label_ids, affine)
    horn_mm, best_z = frontal_horn_width(np.isin(label_ids, LATERAL_VENTRICLE_IDS), affine)
    if best_z is None:
        return float("nan")
    skull_mm = skull_width_mm(label_ids != 0, affine, best_z)
    return horn_mm / skull_mm if skull_mm > 0 else float("nan")


def frontal_horn_width(lateral: npt.NDArray[np.bool_], affine: npt.NDArray) -> tuple[float, int | None]:
    """Maximal frontal-horn width (mm) of a lateral-ventricle mask and the axial slice where it lies.

    Frontal horns are the mask voxels in the anterior half of its antero-posterior extent. Widths are
    left-right spans (voxel count × spacing) within one row; the horn width spans both horns.
    Returns ``(0.0, None)`` for an empty mask.
    """
    if not lateral.any():
        return 0.0, None
    ys = np.nonzero(lateral.any(axis=(0, 2)))[0]
    mid_y = (ys.min() + ys.max()) / 2.0
    horns = lateral.copy()
    horns[:, : int(np.floor(mid_y)) + 1, :] = False
    if not horns.any():  # a ventricle one voxel deep: its only row is its front
        horns = lateral
    horn_width = _row_spans(horns).max(axis=0)  # (y, z) → per z
    best_z = int(np.argmax(horn_width))
    return float(horn_width[best_z]) * spacing_of(affine)[0], best_z


def skull_width_mm(intracranial: npt.NDArray[np.bool_], affine: npt.NDArray, z: int | None = None) -> float:
    """Widest left-right span (mm) of an intracranial mask on axial slice ``z`` (every slice if None)."""
    mask = intracranial if z is None else intracranial[:, :, z : z + 1]
    return float(_row_spans(mask).max(initial=0)) * spacing_of(affine)[0]


def to_ras(array: npt.NDArray, affine: npt.NDArray) -> tuple[npt.NDArray, npt.NDArray]:
    """``array`` with its axes turned to the closest RAS+ order and direction (left→right, posterior→anterior,
    inferior→superior: the axes every measure here assumes), and the affine that goes with it."""
    orientation = io_orientation(np.asarray(affine, dtype=np.float64))
    if np.array_equal(orientation, [[0, 1], [1, 1], [2, 1]]):
        return array, affine
    return apply_orientation(array, orientation), np.asarray(affine) @ inv_ornt_aff(orientation, array.shape)


def _row_spans(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """For each (y, z) row along x, the span from the first to the last set voxel (0 if none)."""
    nx = mask.shape[0]
    any_set = mask.any(axis=0)
    first = np.argmax(mask, axis=0)
    last = nx - 1 - np.argmax(mask[::-1], axis=0)
    return np.where(any_set, last - first + 1, 0)
