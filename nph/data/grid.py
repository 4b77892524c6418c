"""Putting a volume on nph's fixed grid: one resampling step that also centres on the head and crops/pads.

Every stage works on one grid (``grid.shape`` voxels at ``grid.spacing`` mm, RAS+). Ingest centres that
grid on the head; segmentation and evaluation reuse :func:`resample_to` to bring predictions onto a
reference grid. The mapping goes target voxel → world mm → source voxel through the two affines, so any
source orientation (LAS, LPI, oblique) lands correctly without a separate reorientation step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from nph.errors import InputError
from nph.io.nifti import Volume

__all__ = [
    "DEFAULT_PERCENTILES",
    "Grid",
    "GriddedCase",
    "head_centre_mm",
    "resample_to",
    "scale_intensity",
    "target_affine",
    "to_grid",
]

#: Thesis intensity normalisation: 0.5th and 99.5th percentile of the head voxels → 0 and 1.
DEFAULT_PERCENTILES: tuple[float, float] = (0.5, 99.5)


@dataclass(frozen=True)
class Grid:
    """A target grid: ``shape`` in voxels (R, A, S) and ``spacing`` in mm, axis-aligned RAS+."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or any(int(n) != n or n < 1 for n in self.shape):
            raise InputError(f"grid.shape: expected three positive integers, got {list(self.shape)}")
        if len(self.spacing) != 3 or any(not np.isfinite(s) or s <= 0 for s in self.spacing):
            raise InputError(f"grid.spacing: expected three positive sizes in mm, got {list(self.spacing)}")
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))


@dataclass
class GriddedCase:
    """A label map (SynthSeg ids) and optional image on one target grid, plus how much ICV the crop kept."""

    label: Volume
    image: Volume | None
    icv_retained: float


def target_affine(grid: Grid, centre_mm: Sequence[float] | npt.NDArray) -> npt.NDArray[np.float64]:
    """RAS+ affine ``diag(spacing)`` whose grid centre (voxel ``(shape - 1) / 2``) sits at ``centre_mm``."""
    spacing = np.asarray(grid.spacing, dtype=np.float64)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = np.asarray(centre_mm, dtype=np.float64) - spacing * (np.asarray(grid.shape) - 1) / 2.0
    return affine


def head_centre_mm(label_ids: npt.NDArray[np.integer], affine: npt.NDArray, source: str = "label map") -> npt.NDArray:
    """World position (mm) of the centre of the bounding box of all non-background voxels.

    Raises:
        InputError: the label map has no non-background voxel, so there is no head to centre on.
    """
    coords = np.nonzero(np.asarray(label_ids) != 0)
    if coords[0].size == 0:
        raise InputError(f"{source}: label map has no non-background voxels")
    centre_vox = np.array([(c.min() + c.max()) / 2.0 for c in coords] + [1.0])
    return (np.asarray(affine, dtype=np.float64) @ centre_vox)[:3]


def resample_to(volume: Volume, target_affine: npt.NDArray, target_shape: Sequence[int], order: int) -> Volume:
    """Resample ``volume`` onto the grid ``(target_affine, target_shape)``; outside the source is 0.

    Args:
        volume: source data and its voxel→mm affine (any orientation).
        target_affine: voxel→mm affine of the target grid (4×4).
        target_shape: target voxels per axis.
        order: 0 (nearest; label maps keep their ids and dtype) or 1 (linear; images, returned float32).

    Returns:
        The resampled volume with ``target_affine``.
    """
    if order not in (0, 1):
        raise ValueError(f"order must be 0 (labels) or 1 (images), got {order}")
    target_affine = np.asarray(target_affine, dtype=np.float64)
    to_source = np.linalg.inv(np.asarray(volume.affine, dtype=np.float64)) @ target_affine
    data = volume.data if order == 0 else np.asarray(volume.data, dtype=np.float32)
    out = ndimage.affine_transform(
        data,
        to_source[:3, :3],
        offset=to_source[:3, 3],
        output_shape=tuple(int(n) for n in target_shape),
        order=order,
        mode="constant",
        cval=0,
        prefilter=False,
    )
    return Volume(data=out, affine=target_affine)


def scale_intensity(
    image: npt.NDArray, head: npt.NDArray[np.bool_], percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    source: str = "image",
) -> npt.NDArray[np.float32]:
    """Map the ``percentiles`` of the head voxels to 0 and 1, clip to [0, 1], and zero the background.

    Percentiles over the head only, so the amount of air in the field of view does not shift the scale.

    Raises:
        InputError: no head voxels, or the image is flat over the head.
    """
    low_q, high_q = percentiles
    values = np.asarray(image, dtype=np.float32)[head]
    if values.size == 0:
        raise InputError(f"{source}: no head voxels to scale intensities over")
    low, high = np.percentile(values, [low_q, high_q])
    if not high > low:
        raise InputError(f"{source}: intensities are constant over the head ({low:.4g}); cannot scale")
    scaled = np.clip((np.asarray(image, dtype=np.float32) - low) / (high - low), 0.0, 1.0)
    scaled[~head] = 0.0
    return scaled.astype(np.float32, copy=False)


def to_grid(
    label: Volume,
    grid: Grid,
    image: Volume | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    label_source: str = "label map",
    image_source: str = "image",
) -> GriddedCase:
    """Put a case on ``grid`` centred on its head: labels nearest-neighbour, image linear and scaled.

    The head mask for intensity scaling is the resampled label map's non-background voxels. The
    ``*_source`` names start any error message, so the user learns which file is at fault.
    """
    affine = target_affine(grid, head_centre_mm(label.data, label.affine, label_source))
    label_out = resample_to(label, affine, grid.shape, order=0)
    image_out = None
    if image is not None:
        resampled = resample_to(image, affine, grid.shape, order=1)
        scaled = scale_intensity(resampled.data, label_out.data != 0, percentiles, source=image_source)
        image_out = Volume(data=scaled, affine=affine)
    source_ml = float((label.data != 0).sum()) * abs(float(np.linalg.det(label.affine[:3, :3])))
    target_ml = float((label_out.data != 0).sum()) * float(np.prod(grid.spacing))
    return GriddedCase(label=label_out, image=image_out, icv_retained=min(target_ml / source_ml, 1.0))
