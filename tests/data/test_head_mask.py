"""The image-only head mask: covers the brain of phantoms in both contrasts, bridges a dark skull, refuses no head."""

from __future__ import annotations

import numpy as np
import pytest

from nph.data.head_mask import head_mask, otsu_threshold
from nph.data.phantoms import make_phantom
from nph.errors import InputError

SPACING = (3.333, 3.5, 3.333)


@pytest.mark.parametrize("contrast", ["flair", "t1"])
def test_mask_covers_the_brain_of_a_phantom(contrast: str) -> None:
    phantom = make_phantom(1, shape=(48, 64, 48), spacing=SPACING, contrast=contrast)
    mask = head_mask(phantom.image, SPACING)
    brain = (phantom.label_ids != 0) & (phantom.label_ids != 24)  # the phantom has no scalp: outer CSF is air-dark
    assert (mask & brain).sum() / brain.sum() > 0.98
    assert not mask[phantom.label_ids == 0].any() or (mask & (phantom.label_ids == 0)).sum() < 0.02 * mask.sum()
    ventricles = np.isin(phantom.label_ids, (4, 43))  # dark inside the brain, filled
    assert mask[ventricles].all()


def test_scalp_skull_and_csf_gap_are_bridged_on_anisotropic_voxels() -> None:
    """Bright scalp, 4 mm dark skull + CSF, bright brain, open at the neck: one mask, the gap included."""
    spacing = (1.0, 1.0, 3.0)
    x, y, z = np.meshgrid(np.arange(80) - 39.5, np.arange(80) - 39.5, (np.arange(30) - 14.5) * 3.0, indexing="ij")
    radius = np.sqrt(x**2 + y**2 + np.maximum(z, 0) ** 2)  # a cylinder below the centre: open at the bottom
    image = np.zeros(radius.shape, np.float32)
    image[(radius <= 36) & (radius > 32)] = 0.9  # scalp
    image[radius <= 28] = 0.6  # brain
    image[(np.abs(x) < 4) & (np.abs(y) < 10) & (np.abs(z) < 9)] = 0.05  # a dark ventricle
    image += np.random.default_rng(0).normal(0, 0.02, image.shape).astype(np.float32)
    mask = head_mask(image, spacing)
    assert mask[radius <= 35].mean() > 0.99  # skull gap and ventricle inside
    assert not mask[radius >= 38].any()


def test_otsu_splits_two_levels() -> None:
    values = np.concatenate([np.full(100, 1.0), np.full(300, 5.0)])
    assert 1.0 <= otsu_threshold(values) < 5.0


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((8, 8, 8), np.float32), r"scan\.nii: no head found \(the image is constant, 0\)"),
        (np.full((8, 8, 8), np.nan, np.float32), r"scan\.nii: contains NaN or infinite intensities"),
        (np.ones((8, 8), np.float32), r"scan\.nii: expected a 3D image, got shape \(8, 8\)"),
    ],
)
def test_no_head_is_refused_naming_the_file(image: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        head_mask(image, (1.0, 1.0, 1.0), source="scan.nii")
