"""Quality signals of the image model: numbers on volumes whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nph.data.labels import LABEL_IDS
from nph.models.image_quality import (
    PARENCHYMA_INDICES,
    VENTRICLE_INDICES,
    contrast_error,
    label_means,
    ms_ssim_diversity,
    reconstruction_l1,
    reconstruction_ssim,
    ventricle_contrast,
)

LEFT_WM, LEFT_LATERAL_VENTRICLE = LABEL_IDS.index(2), LABEL_IDS.index(4)


def _labels() -> np.ndarray:
    labels = np.zeros((16, 16, 16), dtype=np.int64)
    labels[2:14, 2:14, 2:14] = LEFT_WM
    labels[6:10, 6:10, 6:10] = LEFT_LATERAL_VENTRICLE
    return labels


def _painted(labels: np.ndarray, wm: float, ventricle: float) -> np.ndarray:
    return np.select([labels == LEFT_WM, labels == LEFT_LATERAL_VENTRICLE], [wm, ventricle], 0.0).astype(np.float32)


def test_index_sets_are_the_ventricles_and_the_cerebral_tissue() -> None:
    assert [LABEL_IDS[i] for i in VENTRICLE_INDICES] == [4, 5, 14, 15, 43, 44]
    assert {LABEL_IDS[i] for i in PARENCHYMA_INDICES} >= {2, 3, 10, 11, 12, 13, 17, 18, 41, 42}
    assert not set(VENTRICLE_INDICES) & set(PARENCHYMA_INDICES)


def test_label_means_are_exact_and_nan_for_absent_labels() -> None:
    labels = _labels()
    means = label_means(_painted(labels, 0.5, 0.1), labels)
    assert means.shape == (33,)
    assert means[0] == 0.0 and means[LEFT_WM] == pytest.approx(0.5)
    assert means[LEFT_LATERAL_VENTRICLE] == pytest.approx(0.1)
    assert np.isnan(means[5]) and np.isnan(means[-1])


def test_contrast_error_is_mean_absolute_difference_over_shared_foreground_labels() -> None:
    labels = _labels()
    real = label_means(_painted(labels, 0.5, 0.1), labels)
    generated = label_means(_painted(labels, 0.4, 0.3), labels)
    assert contrast_error(generated, real) == pytest.approx((0.1 + 0.2) / 2)
    assert contrast_error(real, real) == 0.0
    assert contrast_error(np.stack([generated, real]), np.stack([real, real])) == pytest.approx(0.075)


def test_ventricle_contrast_sign_follows_which_tissue_is_darker() -> None:
    labels = _labels()
    assert ventricle_contrast(_painted(labels, 0.5, 0.1), labels) == pytest.approx(0.4 / 0.6)
    assert ventricle_contrast(_painted(labels, 0.1, 0.5), labels) < 0
    assert np.isnan(ventricle_contrast(_painted(labels, 0.5, 0.1), np.zeros_like(labels)))
    # voxel-weighted: a one-voxel ventricle label at 0.9 barely moves the ventricle mean of 64 voxels at 0.1
    labels[0, 0, 0] = VENTRICLE_INDICES[-1]
    image = _painted(labels, 0.5, 0.1)
    image[0, 0, 0] = 0.9
    ventricles = (64 * 0.1 + 0.9) / 65
    assert ventricle_contrast(image, labels) == pytest.approx((0.5 - ventricles) / (0.5 + ventricles))


def test_reconstruction_l1_and_ssim() -> None:
    image = torch.rand(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    assert reconstruction_l1(image, image) == 0.0
    assert reconstruction_ssim(image, image) == pytest.approx(1.0, abs=1e-5)
    shifted = (image + 0.1).clamp(0, 1)
    assert reconstruction_l1(shifted, image) == pytest.approx(float((shifted - image).abs().mean()))
    assert reconstruction_ssim(torch.rand(1, 1, 16, 16, 16), image) < 0.2


def test_ms_ssim_diversity_is_one_for_copies_and_lower_for_different_samples() -> None:
    rng = np.random.default_rng(0)
    base = rng.random((32, 48, 32)).astype(np.float32)
    assert ms_ssim_diversity(np.stack([base, base])) == pytest.approx(1.0, abs=1e-4)
    different = ms_ssim_diversity(np.stack([base, rng.random((32, 48, 32)).astype(np.float32)]))
    assert different < 0.2
    with pytest.raises(ValueError, match="at least 2"):
        ms_ssim_diversity(base[None])
