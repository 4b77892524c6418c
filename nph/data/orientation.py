"""Array orientation by axis codes (``RAS``, ``IPL``, ...): exact axis permutations and flips, never resampling.

nph's own arrays are RAS+ (:mod:`nph.io.nifti`); models imported with ``nph import-thesis`` saw other layouts, and
the thesis's mask and image models saw different ones (IPL, IAR). Label maps travel between them through
:func:`reorient`, which only permutes and flips axes, so every voxel keeps its value and a round trip is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform

from nph.errors import InputError

__all__ = ["RAS", "axis_codes", "axis_ornt", "reorient", "reorient_axes"]

T = TypeVar("T")
#: nph's own array orientation, and that of every bundle whose meta names none.
RAS = "RAS"


def axis_ornt(codes: str, key: str = "orientation") -> npt.NDArray[np.float64]:
    """nibabel's (world axis, direction) per array axis for three axis codes; ``key`` names the setting in errors."""
    letters = tuple(str(codes).upper())
    if len(letters) != 3:
        raise InputError(f"{key}={codes}: expected three axis codes (e.g. IPL, RAS) for a 3-D grid")
    try:
        ornt = axcodes2ornt(letters)
    except ValueError:
        ornt = np.full((3, 2), np.nan)
    if np.isnan(ornt).any() or sorted(ornt[:, 0].astype(int)) != [0, 1, 2]:
        raise InputError(f"{key}={codes}: expected one of R/L, A/P, S/I per axis (e.g. IPL, RAS)")
    return ornt


def axis_codes(codes: str, key: str = "orientation") -> str:
    """``codes`` checked and upper-cased (``ipl`` → ``IPL``)."""
    axis_ornt(codes, key)
    return str(codes).upper()


def _transform(source: str, target: str) -> npt.NDArray[np.float64]:
    return ornt_transform(axis_ornt(source), axis_ornt(target))


def reorient(array: npt.NDArray, source: str, target: str) -> npt.NDArray:
    """``array`` (..., X, Y, Z), its last three axes laid out as ``source``, turned into ``target``'s layout.

    The same codes return ``array`` itself; otherwise a contiguous copy (torch cannot wrap negative strides).
    """
    if axis_codes(source) == axis_codes(target):
        return array
    spatial = np.moveaxis(np.asarray(array), (-3, -2, -1), (0, 1, 2))
    turned = apply_orientation(spatial, _transform(source, target))
    return np.ascontiguousarray(np.moveaxis(turned, (0, 1, 2), (-3, -2, -1)))


def reorient_axes(values: Sequence[T], source: str, target: str) -> tuple[T, ...]:
    """Per-axis values (grid shape, voxel size) of a ``source`` array, in the axis order of its ``target`` layout."""
    if len(values) != 3:
        raise ValueError(f"reorient_axes: expected three per-axis values, got {list(values)}")
    source_axis = {int(new_axis): axis for axis, (new_axis, _) in enumerate(_transform(source, target))}
    return tuple(values[source_axis[axis]] for axis in range(3))
