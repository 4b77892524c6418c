"""Synthetic head scans for the ingest tests, written with nibabel in several orientations and formats.

:func:`head_labels`: a small ellipsoid head at 1 mm: left hemisphere white matter (2) and cortex (3) at low
x (RAS), right (41/42) at high x, lateral ventricles 4/43, a 3rd ventricle 14, a left-only putamen (12) marker.
:func:`write_real_shaped`: a phantom head (nph.data.phantoms) written the way clinics and SynthSeg write
real scans: the image on an oblique thick-slice grid, the label map on a finer isotropic grid of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.spatial.transform import Rotation

from nph.data.grid import resample_to
from nph.data.labels import VENTRICLE_IDS
from nph.data.phantoms import make_phantom
from nph.io.nifti import Volume

__all__ = ["SHAPE", "RealShaped", "aseg_version", "head_image", "head_labels", "oblique_affine", "reorient",
           "write_pair", "write_real_shaped", "write_volume"]

SHAPE = (40, 48, 40)
#: Mean intensity per SynthSeg id (FLAIR-like: CSF dark).
_INTENSITY = {2: 300.0, 41: 300.0, 3: 200.0, 42: 200.0, 4: 40.0, 43: 40.0, 14: 40.0, 12: 250.0}


def head_labels(shape: tuple[int, int, int] = SHAPE, centre_shift: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """SynthSeg-id label map (int16, RAS array axes) of an ellipsoidal head with ventricles."""
    grid = np.indices(shape).astype(np.float64)
    centre = np.array([(n - 1) / 2 for n in shape]) + np.array(centre_shift)
    x, y, z = (grid[i] - centre[i] for i in range(3))
    head = (x / 15) ** 2 + (y / 19) ** 2 + (z / 15) ** 2 <= 1
    inner = (x / 12) ** 2 + (y / 16) ** 2 + (z / 12) ** 2 <= 1
    left = x < 0
    ids = np.zeros(shape, dtype=np.int16)
    ids[head & left], ids[head & ~left] = 3, 42
    ids[inner & left], ids[inner & ~left] = 2, 41
    ventricle = ((np.abs(x) - 5) / 3.5) ** 2 + (y / 10) ** 2 + ((z - 2) / 4.5) ** 2 <= 1
    ids[ventricle & left], ids[ventricle & ~left] = 4, 43
    ids[(np.abs(x) <= 0.5) & (np.abs(y) <= 3) & (np.abs(z + 1) <= 2)] = 14
    ids[((x + 8) ** 2 + y**2 + (z + 4) ** 2) <= 2.5**2] = 12  # left putamen: the left/right marker
    return ids


def head_image(ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """Float32 image: a mean per label plus seeded Gaussian noise inside the head, 0 outside."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    image = np.zeros(ids.shape, dtype=np.float32)
    for label_id, mean in _INTENSITY.items():
        image[ids == label_id] = mean
    image += (ids != 0) * rng.normal(0, 10, ids.shape).astype(np.float32)
    return image


def aseg_version(ids: np.ndarray) -> np.ndarray:
    """The same head in FreeSurfer aseg ids: choroid plexus (31/63) inside the ventricles, CC (251) on the midline."""
    aseg = ids.astype(np.int32).copy()
    x = np.arange(ids.shape[0])
    left_vent = np.argwhere(ids == 4)
    aseg[tuple(left_vent[: len(left_vent) // 4].T)] = 31
    right_vent = np.argwhere(ids == 43)
    aseg[tuple(right_vent[: len(right_vent) // 4].T)] = 63
    midline = np.abs(x - (ids.shape[0] - 1) / 2) <= 1.0
    cc = np.zeros(ids.shape, dtype=bool)
    cc[midline, 20:28, 26:28] = True
    aseg[cc & np.isin(ids, (2, 41))] = 251
    return aseg


def reorient(data: np.ndarray, affine: np.ndarray, flips: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Store RAS data with the given axes reversed (e.g. (0,) → LAS), keeping every voxel's world position."""
    flip = np.eye(4)
    for axis in flips:
        flip[axis, axis] = -1
        flip[axis, 3] = data.shape[axis] - 1
    return np.flip(data, axis=flips).copy(), affine @ flip


def write_volume(path: Path, data: np.ndarray, affine: np.ndarray | None = None, flips: tuple[int, ...] = ()) -> Path:
    """Write RAS ``data`` to ``path`` (.nii.gz/.nii/.mgz), stored with ``flips`` axes reversed."""
    affine = np.diag([1.0, 1.0, 1.0, 1.0]) if affine is None else affine
    stored, stored_affine = reorient(data, affine, flips)
    dtype = np.float32 if np.issubdtype(data.dtype, np.floating) else np.int32
    if path.name.endswith(".mgz"):
        image = nib.MGHImage(stored.astype(dtype), stored_affine)
    else:
        image = nib.Nifti1Image(stored.astype(dtype), stored_affine)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


def write_pair(
    image_path: Path,
    label_path: Path,
    seed: int = 0,
    flips: tuple[int, ...] = (),
    labels: np.ndarray | None = None,
    affine: np.ndarray | None = None,
) -> np.ndarray:
    """Write one synthetic case (image and label map); returns the RAS label map it holds."""
    ids = head_labels() if labels is None else labels
    write_volume(image_path, head_image(ids if labels is None else head_labels(), seed), affine, flips)
    write_volume(label_path, ids, affine, flips)
    return ids


def oblique_affine(spacing: tuple[float, float, float], shape: tuple[int, ...], centre_mm: np.ndarray,
                   angles_deg: tuple[float, float, float] = (12.0, -8.0, 15.0)) -> np.ndarray:
    """An oblique voxel→mm affine: axes rotated by ``angles_deg`` (x, y, z Euler), grid centred on ``centre_mm``."""
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix() @ np.diag(spacing)
    affine[:3, 3] = np.asarray(centre_mm) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return affine


@dataclass(frozen=True)
class RealShaped:
    """What :func:`write_real_shaped` wrote and the truth it was made from."""

    image: Path
    label: Path
    labels: np.ndarray  # the SynthSeg-id map as written (RAS, on its own grid)
    label_affine: np.ndarray
    ventricle_ml: float  # of the written label map
    icv_ml: float


def write_real_shaped(
    image_path: Path, label_path: Path, *, seed: int = 0, scale: float = 1.0, enlargement: float = 0.3,
    contrast: str = "flair", label_values: str = "synthseg", label_flips: tuple[int, ...] = (),
) -> RealShaped:
    """A phantom head as a clinical scan: image on an oblique ``0.9×0.9×3 mm × scale`` grid (FOV 220×240×180 mm),
    label map on a ``1 mm × scale`` RAS grid (stored with ``label_flips``), like SynthSeg's output.

    ``label_values``: ``synthseg`` (the phantom's ids), ``aseg`` (:func:`aseg_version`) or ``ventricles`` (a
    binary expert mask: 1 in the ventricles, 0 elsewhere). ``scale`` 2 halves every resolution (fast tests).
    """
    spacing = (scale, scale, scale)
    shape = tuple(round(n / scale) for n in (160, 224, 160))
    phantom = make_phantom(seed, shape=shape, spacing=spacing, enlargement=enlargement, contrast=contrast)
    image_spacing = (0.9 * scale, 0.9 * scale, 3.0 * scale)
    image_shape = tuple(round(fov / s) for fov, s in zip((220, 240, 180), image_spacing, strict=True))
    centre = phantom.affine[:3, :3] @ ((np.array(shape) - 1) / 2) + phantom.affine[:3, 3] + np.array([3.0, -5.0, 4.0])
    image_affine = oblique_affine(image_spacing, image_shape, centre)
    image = resample_to(Volume(phantom.image * 800.0, phantom.affine), image_affine, image_shape, order=1).data
    noise = np.random.default_rng(np.random.SeedSequence(seed)).normal(0.0, 8.0, (2, *image_shape))
    image = np.hypot(image + noise[0], noise[1])  # magnitude image: Rician noise, air is not 0
    write_volume(image_path, image.astype(np.float32), image_affine)
    ids = phantom.label_ids
    written = {"synthseg": ids, "aseg": aseg_version(ids) if label_values == "aseg" else ids,
               "ventricles": np.isin(ids, VENTRICLE_IDS).astype(np.int16)}[label_values]
    write_volume(label_path, written, phantom.affine, flips=label_flips)
    voxel_ml = scale**3 / 1000
    return RealShaped(image_path, label_path, written, phantom.affine,
                      float(np.isin(ids, VENTRICLE_IDS).sum()) * voxel_ml, float((ids != 0).sum()) * voxel_ml)
