"""Small synthetic head scans for the ingest tests, written with nibabel in several orientations and formats.

The head is an ellipsoid at 1 mm: left hemisphere white matter (2) and cortex (3) at low x (RAS), right
(41/42) at high x, lateral ventricles 4/43, a 3rd ventricle 14, and a left-only putamen (12) marker blob.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["SHAPE", "aseg_version", "head_image", "head_labels", "reorient", "write_pair", "write_volume"]

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
