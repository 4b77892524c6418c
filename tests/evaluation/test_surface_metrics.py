"""Surface metrics against analytic spheres, MONAI's and SimpleITK's implementations, and the empty-mask rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance, compute_surface_dice
from scipy import ndimage

from nph.evaluation.surface import EmptyState, dice, fov_diagonal_mm, surface_distances, surface_metrics

SPACING = (0.8, 1.0, 1.25)  # anisotropic on purpose


def ball(
    shape: tuple[int, int, int],
    centre_mm: tuple[float, float, float],
    radius_mm: float,
    spacing: tuple[float, float, float] = SPACING,
) -> np.ndarray:
    """Voxels whose centre lies within ``radius_mm`` of ``centre_mm`` (voxel i sits at i × spacing)."""
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, centre_mm, strict=True)) <= radius_mm**2


SHAPE = (50, 40, 32)
CENTRE = (20.0, 20.0, 20.0)


def test_concentric_spheres_match_the_analytic_values() -> None:
    inner, outer = ball(SHAPE, CENTRE, 10.0), ball(SHAPE, CENTRE, 12.0)
    voxel_mm3 = math.prod(SPACING)
    assert inner.sum() * voxel_mm3 == pytest.approx(4 / 3 * math.pi * 10.0**3, rel=0.03)
    m = surface_metrics(outer, inner, SPACING, tolerance_mm=1.0)
    assert m.dice == pytest.approx(2 * 10.0**3 / (10.0**3 + 12.0**3), abs=0.02)  # 0.733
    # every surface point is 2 mm from the other sphere; digitisation moves it by less than one voxel
    assert m.hd95 == pytest.approx(2.0, abs=max(SPACING) / 2)
    assert m.assd == pytest.approx(2.0, abs=0.35)
    assert m.nsd < 0.2  # 1 mm tolerance: almost nothing within reach
    assert surface_metrics(outer, inner, SPACING, tolerance_mm=3.5).nsd == 1.0
    assert m.empty is EmptyState.NONE


def test_offset_spheres_match_the_lens_volume_and_the_offset() -> None:
    r, d = 10.0, 4.0
    a, b = ball(SHAPE, CENTRE, r), ball(SHAPE, (CENTRE[0] + d, CENTRE[1], CENTRE[2]), r)
    lens = math.pi * (4 * r + d) * (2 * r - d) ** 2 / 12
    assert dice(a, b) == pytest.approx(lens / (4 / 3 * math.pi * r**3), abs=0.02)  # 0.704
    ab, ba = surface_distances(a, b, SPACING)
    assert max(ab.max(), ba.max()) == pytest.approx(d, abs=max(SPACING) / 2)  # Hausdorff = the offset
    assert surface_metrics(a, b, SPACING).hd95 < d


def _monai(a: np.ndarray, b: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    """MONAI's HD95, ASSD and NSD for reference ``a`` and prediction ``b`` (one-hot, batch of 1)."""

    def onehot(m: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([~m, m])[None].astype(np.float32))

    pred, ref = onehot(b), onehot(a)
    hd = compute_hausdorff_distance(pred, ref, percentile=95, spacing=list(SPACING)).item()
    assd = compute_average_surface_distance(pred, ref, symmetric=True, spacing=list(SPACING)).item()
    nsd = compute_surface_dice(pred, ref, class_thresholds=[tolerance], spacing=list(SPACING)).item()
    return hd, assd, nsd


@pytest.mark.parametrize("case", ["shifted", "eroded", "blob"])
def test_agrees_with_monai_on_phantom_shapes(case: str) -> None:
    rng = np.random.default_rng(np.random.SeedSequence(11))
    a = ball(SHAPE, CENTRE, 9.0) | ball(SHAPE, (28.0, 22.0, 18.0), 6.0)
    if case == "shifted":
        b = np.roll(a, (2, -1, 1), axis=(0, 1, 2))
    elif case == "eroded":
        b = ndimage.binary_erosion(a, iterations=2)
    else:
        noise = ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.0)
        b = ndimage.binary_dilation(a) & (noise > -0.05) | (ball(SHAPE, (8.0, 30.0, 30.0), 3.0))
    mine = surface_metrics(a, b, SPACING, tolerance_mm=1.5)
    hd, assd, nsd = _monai(a, b, 1.5)
    assert mine.hd95 == pytest.approx(hd, rel=1e-5)
    assert mine.assd == pytest.approx(assd, rel=1e-5)
    assert mine.nsd == pytest.approx(nsd, rel=1e-6)


def _sitk(mask: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8).transpose(2, 1, 0))  # sitk arrays are (z, y, x)
    image.SetSpacing(SPACING)
    return image


def test_agrees_with_simpleitk_dice_and_hausdorff() -> None:
    a = ball(SHAPE, CENTRE, 9.0) | ball(SHAPE, (28.0, 22.0, 18.0), 6.0)
    b = ndimage.binary_dilation(a, iterations=2)  # every point of b within HD of a's surface: set = surface HD
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(_sitk(a), _sitk(b))
    assert dice(a, b) == pytest.approx(overlap.GetDiceCoefficient(), rel=1e-9)
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(_sitk(a), _sitk(b))
    ab, ba = surface_distances(a, b, SPACING)
    assert max(ab.max(), ba.max()) == pytest.approx(hausdorff.GetHausdorffDistance(), rel=1e-6)
    # and spacing matters: the same masks at isotropic 1 mm give another distance
    iso_ab, _ = surface_distances(a, b, (1.0, 1.0, 1.0))
    assert iso_ab.max() != pytest.approx(ab.max())


def test_empty_mask_rules() -> None:
    empty, full = np.zeros(SHAPE, bool), ball(SHAPE, CENTRE, 5.0)
    both = surface_metrics(empty, empty, SPACING)
    assert both.empty is EmptyState.BOTH and all(math.isnan(v) for v in (both.dice, both.hd95, both.assd, both.nsd))
    assert not both.worst_case
    # field of view 50×0.8 = 40 mm, 40×1.0 = 40 mm, 32×1.25 = 40 mm: a cube whose diagonal is 40·√3 mm
    diagonal = 40.0 * math.sqrt(3.0)
    assert fov_diagonal_mm(SHAPE, SPACING) == pytest.approx(diagonal)
    missed = surface_metrics(full, empty, SPACING)
    assert missed.empty is EmptyState.PREDICTION and (missed.dice, missed.nsd) == (0.0, 0.0) and missed.worst_case
    assert (missed.hd95, missed.assd) == (pytest.approx(diagonal), pytest.approx(diagonal))
    spurious = surface_metrics(empty, full, SPACING)
    assert spurious.empty is EmptyState.REFERENCE and spurious.dice == 0.0 and spurious.hd95 == pytest.approx(diagonal)
    assert surface_metrics(full, empty, SPACING, worst_case_mm=123.0).assd == 123.0
    identical = surface_metrics(full, full, SPACING)
    assert (identical.dice, identical.hd95, identical.assd, identical.nsd) == (1.0, 0.0, 0.0, 1.0)
    assert not identical.worst_case


def test_an_empty_prediction_is_worse_than_any_wrong_one() -> None:
    """The largest distance any two non-empty masks of the grid can have stays below the worst case."""
    corner_a, corner_b = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    corner_a[0, 0, 0], corner_b[-1, -1, -1] = True, True
    farthest = surface_metrics(corner_a, corner_b, SPACING)
    # voxel centres 49×0.8, 39×1.0, 31×1.25 mm apart
    assert farthest.hd95 == pytest.approx(math.dist((0, 0, 0), (49 * 0.8, 39.0, 31 * 1.25)))
    assert farthest.hd95 < surface_metrics(corner_a, np.zeros(SHAPE, bool), SPACING).hd95
