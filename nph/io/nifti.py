"""Reading and writing volumes: NIfTI and FreeSurfer .mgz in, RAS+ NIfTI out, atomically.

Every volume nph loads is reoriented to RAS+ (the closest canonical orientation), so array axis 0
runs left→right, 1 posterior→anterior, 2 inferior→superior, whatever the file's orientation.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt

from nph.errors import InputError
from nph.io.atomic import write_bytes

__all__ = [
    "NIFTI_SUFFIXES",
    "Volume",
    "check_pair",
    "load_volume",
    "save_volume",
    "spacing_of",
]

NIFTI_SUFFIXES = (".nii.gz", ".nii", ".mgz")
AFFINE_ATOL_MM = 1e-3


@dataclass
class Volume:
    """A 3D array on a RAS+ voxel grid. ``affine`` maps voxel indices to world millimetres."""

    data: npt.NDArray
    affine: npt.NDArray[np.float64]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three array axes."""
        return spacing_of(self.affine)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


def spacing_of(affine: npt.NDArray) -> tuple[float, float, float]:
    """Voxel size (mm) along each array axis, from an affine's column norms."""
    sizes = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
    return (float(sizes[0]), float(sizes[1]), float(sizes[2]))


def load_volume(path: str | Path, *, integer: bool = False) -> Volume:
    """Load a 3D .nii/.nii.gz/.mgz volume, reoriented to RAS+.

    Args:
        path: the file.
        integer: the volume is a label map — its values must be whole numbers; returned as int32.

    Raises:
        InputError: unreadable or corrupt file, not 3D, non-finite values, or non-integer labels.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        image = nib.load(str(path))
        image = nib.as_closest_canonical(image)
        data = np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel raises many types for corrupt files; all mean "unreadable"
        raise InputError(f"{path}: cannot read as NIfTI/MGZ ({type(err).__name__}: {_first_line(err)})") from err
    if data.ndim > 3:  # trailing length-1 axes (x, y, z, 1) are a 3D volume
        data = data.reshape(data.shape[:3] + tuple(n for n in data.shape[3:] if n != 1))
    if data.ndim > 3:
        raise InputError(f"{path}: a {data.ndim}D series of {int(np.prod(data.shape[3:]))} volumes (shape "
                         f"{data.shape}), not one 3D volume; extract the volume to use (e.g. fslroi)")
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3D volume, got shape {data.shape}")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise InputError(f"{path}: contains {int((~np.isfinite(data)).sum())} NaN or infinite values")
    if integer:
        data = _as_labels(data, path)
    return Volume(data=data, affine=np.asarray(image.affine, dtype=np.float64))


def _as_labels(data: npt.NDArray, path: Path) -> npt.NDArray[np.int32]:
    """Label maps stored as floats are fine if every value is a whole number."""
    if np.issubdtype(data.dtype, np.floating):
        rounded = np.rint(data)
        if not np.array_equal(rounded, data):
            raise InputError(f"{path}: label map has non-integer values (e.g. {data[rounded != data].flat[0]})")
        data = rounded
    return data.astype(np.int32)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else ""


def save_volume(
    path: str | Path,
    data: npt.NDArray,
    affine: npt.NDArray,
    *,
    dtype: npt.DTypeLike | None = None,
    compresslevel: int = 1,
) -> Path:
    """Write a NIfTI file atomically (``.nii.gz`` gzipped at ``compresslevel``; level 1 is ~2× faster than 9).

    Float data is stored as float32 unless ``dtype`` says otherwise; integer data keeps its type.
    """
    path = Path(path)
    array = np.asarray(data)
    if dtype is None:
        dtype = np.float32 if np.issubdtype(array.dtype, np.floating) else array.dtype
    image = nib.Nifti1Image(array.astype(dtype, copy=False), np.asarray(affine, dtype=np.float64))
    image.header.set_xyzt_units("mm")
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    payload = image.to_bytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=compresslevel, mtime=0)
    return write_bytes(path, payload)


def check_pair(image: Volume, label: Volume, *, image_path: str | Path, label_path: str | Path) -> None:
    """Raise :class:`InputError` unless image and label share shape and affine (within 1 µm)."""
    if image.shape != label.shape:
        raise InputError(f"{label_path}: shape {label.shape} does not match image {image_path} shape {image.shape}")
    if not np.allclose(image.affine, label.affine, atol=AFFINE_ATOL_MM):
        diff = float(np.abs(image.affine - label.affine).max())
        raise InputError(f"{label_path}: affine differs from image {image_path} by up to {diff:.4g} mm")
