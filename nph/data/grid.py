"""Putting a volume on nph's fixed grid: one resampling step that also centres on the head and crops/pads.

Every stage works on one grid (``grid.shape`` voxels at ``grid.spacing`` mm, RAS+). Ingest centres that
grid on the head; segmentation and evaluation reuse :func:`resample_to` to bring predictions onto a
reference grid. The mapping goes target voxel → world mm → source voxel through the two affines, so any
source grid (LAS, LPI, oblique, thick slices, another field of view) lands correctly without a separate
reorientation step; image and label map may each lie on their own grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from nph.data.head_mask import head_mask
from nph.errors import InputError
from nph.io.nifti import Volume

__all__ = [
    "DEFAULT_PERCENTILES",
    "MIN_LABEL_OVER_HEAD",
    "Grid",
    "GriddedCase",
    "LabelResampling",
    "check_same_head",
    "head_centre_mm",
    "resample_labels",
    "resample_to",
    "scale_intensity",
    "target_affine",
    "to_grid",
]

#: Intensity normalisation: the 0.5th and 99.5th percentile (the thesis's values) of the head voxels → 0 and 1.
DEFAULT_PERCENTILES: tuple[float, float] = (0.5, 99.5)
#: Share of a label map's labelled voxels that must lie over the image's head (:func:`check_same_head`).
MIN_LABEL_OVER_HEAD = 0.95
#: How far (mm, plus one target voxel) the labelled extent may reach beyond the image's head on any side.
MAX_OVERHANG_MM = 10.0
#: SynthSeg's extra-cerebral CSF: as dark as skull and air, so it may lie outside an image-derived head mask.
_OUTER_CSF_ID = 24


class LabelResampling(str, Enum):
    """How a label map is resampled: ``linear`` (each label's one-hot channel linearly, then the most
    probable label; keeps volumes on a coarser grid) or ``nearest`` (nearest neighbour)."""

    LINEAR = "linear"
    NEAREST = "nearest"


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
    """A label map and/or an image on one target grid, plus how much of the labelled volume the crop kept
    (NaN without a label map)."""

    label: Volume | None
    image: Volume | None
    icv_retained: float


def target_affine(grid: Grid, centre_mm: Sequence[float] | npt.NDArray) -> npt.NDArray[np.float64]:
    """RAS+ affine ``diag(spacing)`` whose grid centre (voxel ``(shape - 1) / 2``) sits at ``centre_mm``."""
    spacing = np.asarray(grid.spacing, dtype=np.float64)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = np.asarray(centre_mm, dtype=np.float64) - spacing * (np.asarray(grid.shape) - 1) / 2.0
    return affine


def head_centre_mm(label_ids: npt.NDArray, affine: npt.NDArray, source: str = "label map") -> npt.NDArray:
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


def resample_labels(
    volume: Volume, target_affine: npt.NDArray, target_shape: Sequence[int],
    method: LabelResampling = LabelResampling.LINEAR,
) -> Volume:
    """Resample a label map (non-negative integer ids) onto a target grid; ids and dtype are kept.

    ``linear`` resamples each label's indicator with :func:`resample_to` (cropped to the label's bounding
    box, so small structures cost little) and keeps, per target voxel, the label with the highest share —
    background where the shares of all labels sum to less than that of the best one. A map with one label
    (a binary mask) keeps instead the voxels of highest share up to the sum of the shares, so a thin mask
    keeps its volume where cutting at one half would erode it.
    """
    if method is LabelResampling.NEAREST:
        return resample_to(volume, target_affine, target_shape, order=0)
    data = np.asarray(volume.data)
    shape = tuple(int(n) for n in target_shape)
    best_share, best_id = np.zeros(shape, np.float32), np.zeros(shape, data.dtype)
    total = np.zeros(shape, np.float32)
    for index, box in enumerate(ndimage.find_objects(data)):
        if box is None:
            continue
        box = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
        corner = np.eye(4)
        corner[:3, 3] = [b.start for b in box]
        indicator = (data[box] == index + 1).astype(np.float32)
        share = resample_to(Volume(indicator, volume.affine @ corner), target_affine, shape, order=1).data
        total += share
        better = share > best_share
        best_share[better], best_id[better] = share[better], index + 1
    present = np.unique(best_id[best_id != 0])
    if present.size == 1:
        return Volume(data=_volume_kept(best_share, int(present[0]), data.dtype), affine=np.asarray(target_affine))
    best_id[1.0 - total >= best_share] = 0
    return Volume(data=best_id, affine=np.asarray(target_affine, dtype=np.float64))


def _volume_kept(share: npt.NDArray[np.float32], label_id: int, dtype: np.dtype) -> npt.NDArray:
    """The ``round(share.sum())`` voxels of highest share, labelled ``label_id``: the mask's volume is kept."""
    count = round(float(share.sum(dtype=np.float64)))
    out = np.zeros(share.shape, dtype=dtype)
    if count > 0:
        top = np.argpartition(share.ravel(), share.size - count)[share.size - count:]
        out.ravel()[top] = label_id
    return out


def scale_intensity(
    image: npt.NDArray, head: npt.NDArray[np.bool_], percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    source: str = "image", zero_outside: bool = False,
) -> npt.NDArray[np.float32]:
    """Map the ``percentiles`` of the head voxels to 0 and 1 and clip to [0, 1]; ``zero_outside`` zeroes
    the voxels outside ``head``.

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
    if zero_outside:
        scaled[~head] = 0.0
    return scaled.astype(np.float32, copy=False)


def check_same_head(
    label_ids: npt.NDArray[np.integer], head: npt.NDArray[np.bool_], spacing: Sequence[float],
    label_source: str = "label map", image_source: str = "image",
) -> None:
    """Refuse a label map that does not lie on its image's head (a wrong pairing, or one shifted by cm).

    Both arrays are on one grid. The labelled voxels (extra-cerebral CSF aside) must lie over the image's
    head (:data:`MIN_LABEL_OVER_HEAD`), and their extent may not reach more than :data:`MAX_OVERHANG_MM`
    beyond the head's on any side. A different voxel size, orientation or field of view passes.
    """
    labelled = (np.asarray(label_ids) != 0) & (np.asarray(label_ids) != _OUTER_CSF_ID)
    if not labelled.any():
        return
    over_head = float((labelled & head).sum()) / float(labelled.sum())
    overhang = _overhang_mm(labelled, head, spacing) if head.any() else float("inf")
    tolerance = MAX_OVERHANG_MM + max(spacing)
    if over_head < MIN_LABEL_OVER_HEAD or overhang > tolerance:
        raise InputError(
            f"{label_source}: does not describe the head in {image_source}: {over_head:.0%} of its labelled "
            f"voxels lie over the image's head (needs {MIN_LABEL_OVER_HEAD:.0%}) and it reaches {overhang:.0f} mm "
            f"beyond it (allowed {tolerance:.0f}); a wrong pairing or a shifted label map?"
        )


def _overhang_mm(labelled: npt.NDArray[np.bool_], head: npt.NDArray[np.bool_], spacing: Sequence[float]) -> float:
    """How far (mm) the bounding box of ``labelled`` reaches beyond that of ``head``, on its worst side."""
    worst = 0.0
    for axis, size in enumerate(spacing):
        others = tuple(a for a in range(3) if a != axis)
        lab, hd = np.flatnonzero(labelled.any(axis=others)), np.flatnonzero(head.any(axis=others))
        worst = max(worst, (hd[0] - lab[0]) * size, (lab[-1] - hd[-1]) * size)
    return float(worst)


def _image_centre_mm(image: Volume, source: str) -> npt.NDArray:
    """World position (mm) of the centre of the bounding box of the image's head mask."""
    mask = head_mask(image.data, image.spacing, source)
    return head_centre_mm(mask, image.affine, source)


def to_grid(
    label: Volume | None,
    grid: Grid,
    image: Volume | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    label_source: str = "label map",
    image_source: str = "image",
    label_resampling: LabelResampling = LabelResampling.LINEAR,
    centre_on_image: bool = False,
) -> GriddedCase:
    """Put a case on ``grid``: centred on the label map's head (or on the image's head mask: without a label
    map, or with ``centre_on_image`` — for maps that cover only part of the head, such as ventricle masks),
    labels by ``label_resampling``, the image linearly and scaled by the percentiles inside the head
    mask of the resampled image — from the image alone, so training and test scans are scaled alike.

    Image and label map may lie on different grids; they must describe the same head
    (:func:`check_same_head`). The ``*_source`` names start any error message.
    """
    if label is None and image is None:
        raise ValueError("to_grid needs a label map, an image, or both")
    if label is not None and not (centre_on_image and image is not None):
        centre = head_centre_mm(label.data, label.affine, label_source)
    else:
        centre = _image_centre_mm(image, image_source)  # type: ignore[arg-type]
    affine = target_affine(grid, centre)
    label_out = None if label is None else resample_labels(label, affine, grid.shape, label_resampling)
    image_out = None
    if image is not None:
        resampled = resample_to(image, affine, grid.shape, order=1)
        head = head_mask(resampled.data, grid.spacing, image_source)
        if label_out is not None:
            check_same_head(label_out.data, head, grid.spacing, label_source, image_source)
        image_out = Volume(data=scale_intensity(resampled.data, head, percentiles, image_source), affine=affine)
    retained = float("nan")
    if label is not None and label_out is not None:
        source_ml = float((label.data != 0).sum()) * abs(float(np.linalg.det(label.affine[:3, :3])))
        target_ml = float((label_out.data != 0).sum()) * float(np.prod(grid.spacing))
        retained = min(target_ml / source_ml, 1.0)
    return GriddedCase(label=label_out, image=image_out, icv_retained=retained)
