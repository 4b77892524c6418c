"""The head in an MRI volume, found from the image alone: Otsu threshold, closing, largest component, fill.

Used for intensity scaling that needs no label map (the same for training and test scans), for centring an
unlabelled scan on the grid, and for checking that a label map lies over the head of its image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from nph.errors import InputError

__all__ = ["CLOSING_MM", "head_mask", "otsu_threshold"]

#: Gaps up to about twice this (the dark skull and CSF between scalp and brain) are bridged before filling.
CLOSING_MM = 5.0
_BINS = 256
#: Intensities above this percentile are clipped before Otsu, so a few very bright voxels (fat, vessels,
#: artefacts) do not pull the threshold up into the brain.
_CLIP_PERCENTILE = 99.5


def otsu_threshold(values: npt.NDArray, bins: int = _BINS) -> float:
    """Otsu's threshold (the cut that maximises the between-class variance of the histogram) of ``values``."""
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2.0
    weight_low = np.cumsum(counts, dtype=np.float64)
    weight_high = weight_low[-1] - weight_low
    mass_low = np.cumsum(counts * centres, dtype=np.float64)
    mean_low = mass_low / np.maximum(weight_low, 1)
    mean_high = (mass_low[-1] - mass_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def head_mask(image: npt.NDArray, spacing: Sequence[float], source: str = "image") -> npt.NDArray[np.bool_]:
    """Boolean mask of the head (scalp included) of a 3D MRI ``image`` with voxel size ``spacing`` (mm).

    Steps: Otsu threshold of the intensities (clipped at the 99.5th percentile of the voxels above the
    minimum); a closing of :data:`CLOSING_MM` mm (by distance transforms, so anisotropic voxels are handled
    in mm); the largest connected component; holes filled in 3D and then slice by slice along each axis
    (the head is open at the neck and at a cropped field of view, where a 3D fill alone would leave the
    dark skull and CSF out).

    Raises:
        InputError: the image is not 3D, is flat (e.g. all zeros: no head), or holds NaN/Inf.
    """
    data = np.asarray(image, dtype=np.float32)
    if data.ndim != 3:
        raise InputError(f"{source}: expected a 3D image, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise InputError(f"{source}: contains NaN or infinite intensities")
    low = float(data.min())
    above = data[data > low]
    if above.size == 0:
        raise InputError(f"{source}: no head found (the image is constant, {low:.4g})")
    high = float(np.percentile(above, _CLIP_PERCENTILE))  # of the non-background voxels: a small head counts
    if not high > low:
        high = float(above.max())
    foreground = data > otsu_threshold(np.clip(data, low, high))
    closed = _closing(foreground, spacing)
    largest = _largest_component(closed)
    return _fill(largest)


def _closing(mask: npt.NDArray[np.bool_], spacing: Sequence[float]) -> npt.NDArray[np.bool_]:
    """Dilate then erode by :data:`CLOSING_MM` mm via Euclidean distance transforms (fast for large radii)."""
    sampling = tuple(float(s) for s in spacing)
    pad = [int(np.ceil(CLOSING_MM / s)) + 1 for s in sampling]
    padded = np.pad(mask, [(p, p) for p in pad])
    dilated = ndimage.distance_transform_edt(~padded, sampling=sampling) <= CLOSING_MM
    closed = ndimage.distance_transform_edt(dilated, sampling=sampling) > CLOSING_MM
    return closed[tuple(slice(p, -p) for p in pad)]


def _largest_component(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    labelled, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == int(np.argmax(sizes))


def _fill(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    filled = ndimage.binary_fill_holes(mask)
    for axis in range(3):
        for index in range(filled.shape[axis]):
            plane = [slice(None)] * 3
            plane[axis] = index  # type: ignore[call-overload]
            filled[tuple(plane)] = ndimage.binary_fill_holes(filled[tuple(plane)])
    return filled
