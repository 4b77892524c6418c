"""Which real scans ``nph ingest`` keeps: 3D acquisitions with thin slices, as in the thesis's FLAIR cohort.

The BIDS JSON sidecar next to an image (``<name>.json``) is the authority; without it (or without the key)
the header spacing stands in: the thickest voxel edge is the slice thickness, and a voxel more than
:data:`MAX_3D_ANISOTROPY` times longer than its shortest edge marks a 2D (slice-wise) acquisition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nph.data.ingest_layouts import strip_volume_suffix
from nph.errors import InputError

__all__ = ["MAX_3D_ANISOTROPY", "Filters", "filter_reason", "read_sidecar", "sidecar_path"]

#: Voxel edge ratio above which a scan without a sidecar counts as a 2D acquisition.
MAX_3D_ANISOTROPY = 2.0


@dataclass(frozen=True)
class Filters:
    """Case filters; the defaults keep everything.

    Args:
        require_3d: keep only 3D acquisitions (``MRAcquisitionType == "3D"``).
        max_slice_thickness_mm: keep only scans whose ``SliceThickness`` is at most this.
    """

    require_3d: bool = False
    max_slice_thickness_mm: float | None = None

    def __post_init__(self) -> None:
        limit = self.max_slice_thickness_mm
        if limit is not None and not (isinstance(limit, int | float) and limit > 0):
            raise InputError(f"filters.max_slice_thickness_mm: expected a positive number of mm or null, got {limit!r}")

    @property
    def active(self) -> bool:
        return self.require_3d or self.max_slice_thickness_mm is not None


def sidecar_path(image: Path) -> Path:
    """``sub-01_T1w.nii.gz`` → ``sub-01_T1w.json`` in the same folder."""
    return image.with_name(strip_volume_suffix(image.name) + ".json")


def read_sidecar(image: Path) -> dict[str, Any]:
    """The image's BIDS sidecar as a dict, or ``{}`` when there is none.

    Raises:
        InputError: the sidecar exists but is not a JSON object.
    """
    path = sidecar_path(image)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: sidecar is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: sidecar is not a JSON object")
    return data


def filter_reason(image: Path, spacing: tuple[float, float, float], filters: Filters) -> str | None:
    """Why the case should be left out, or ``None`` to keep it."""
    if not filters.active:
        return None
    sidecar = read_sidecar(image)
    if filters.require_3d:
        reason = _not_3d(sidecar, spacing)
        if reason:
            return reason
    if filters.max_slice_thickness_mm is not None:
        thickness, origin = _slice_thickness(image, sidecar, spacing)
        limit = filters.max_slice_thickness_mm
        if thickness > limit:
            return f"slice thickness {thickness:.3g} mm ({origin}) > max_slice_thickness_mm={limit}"
    return None


def _not_3d(sidecar: dict[str, Any], spacing: tuple[float, float, float]) -> str | None:
    acquisition = sidecar.get("MRAcquisitionType")
    if acquisition is not None:
        return None if str(acquisition).upper() == "3D" else f"MRAcquisitionType is {acquisition!r}, not '3D'"
    ratio = max(spacing) / min(spacing)
    if ratio > MAX_3D_ANISOTROPY:
        sizes = "×".join(f"{s:.3g}" for s in spacing)
        return f"no MRAcquisitionType in a sidecar and voxels of {sizes} mm look 2D (edge ratio {ratio:.2g} > 2)"
    return None


def _slice_thickness(image: Path, sidecar: dict[str, Any], spacing: tuple[float, float, float]) -> tuple[float, str]:
    value = sidecar.get("SliceThickness")
    if value is None:
        return max(spacing), "header spacing"
    try:
        return float(value), "sidecar"
    except (TypeError, ValueError) as err:
        raise InputError(f"{sidecar_path(image)}: SliceThickness {value!r} is not a number") from err
