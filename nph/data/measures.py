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

__all__ = ["LATERAL_VENTRICLE_IDS", "Measurements", "evans_index", "measure", "voxel_volume_ml"]

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

    Frontal horns are the lateral-ventricle voxels in the anterior half of the lateral ventricles'
    antero-posterior extent. Widths are left-right spans (voxel count × spacing) within one row;
    the horn width spans both horns. The inner skull width is the widest left-right span of
    intracranial (non-background) voxels on the slice where the horns are widest.
    Returns NaN when there are no lateral ventricles.
    """
    label_ids, affine = _as_ras(label_ids, affine)
    spacing_x = spacing_of(affine)[0]
    lateral = np.isin(label_ids, LATERAL_VENTRICLE_IDS)
    if not lateral.any():
        return float("nan")
    ys = np.nonzero(lateral.any(axis=(0, 2)))[0]
    mid_y = (ys.min() + ys.max()) / 2.0
    horns = lateral.copy()
    horns[:, : int(np.floor(mid_y)) + 1, :] = False
    if not horns.any():  # a ventricle one voxel deep: its only row is its front
        horns = lateral
    horn_width = _row_spans(horns).max(axis=0)  # (y, z) → per z
    best_z = int(np.argmax(horn_width))
    skull_width = _row_spans(label_ids[:, :, best_z : best_z + 1] != 0).max()
    if skull_width == 0:
        return float("nan")
    return float(horn_width[best_z] * spacing_x) / float(skull_width * spacing_x)


def _as_ras(label_ids: npt.NDArray[np.integer], affine: npt.NDArray) -> tuple[npt.NDArray[np.integer], npt.NDArray]:
    """The array and affine reoriented to RAS+ (unchanged when they already are)."""
    ornt = io_orientation(np.asarray(affine, dtype=np.float64))
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return label_ids, affine
    return apply_orientation(label_ids, ornt), np.asarray(affine) @ inv_ornt_aff(ornt, label_ids.shape)


def _row_spans(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """For each (y, z) row along x, the span from the first to the last set voxel (0 if none)."""
    nx = mask.shape[0]
    any_set = mask.any(axis=0)
    first = np.argmax(mask, axis=0)
    last = nx - 1 - np.argmax(mask[::-1], axis=0)
    return np.where(any_set, last - first + 1, 0)
