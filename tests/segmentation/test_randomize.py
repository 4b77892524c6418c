"""The SynthSeg-style randomiser: per-seed variety, reproducibility, label/image consistency, geometry kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from toy_heads import toy_case

from nph.data.dataset import LabelledDataset
from nph.data.labels import LABELS, VENTRICLE_IDS
from nph.errors import InputError
from nph.segmentation.randomize import RandomizeSettings, build_transform, randomize_case, randomize_dataset

TINY = RandomizeSettings(elastic_control_points=5)


def _group_r2(ids: np.ndarray, image: np.ndarray) -> float:
    """Share of the image's variance explained by the tissue group of each voxel (GMM per group ⇒ high)."""
    group = {label.id: label.group for label in LABELS}
    keys = np.vectorize(lambda v: list(group).index(v))(ids)
    total = image.var()
    within = sum(image[keys == k].var() * (keys == k).mean() for k in np.unique(keys))
    return float(1 - within / total)


def test_seeds_reproducible_and_distinct() -> None:
    labels, _, affine = toy_case(3)
    transform = build_transform(TINY)
    ids_a, img_a = randomize_case(labels, affine, transform, seed=11)
    ids_b, img_b = randomize_case(labels, affine, transform, seed=11)
    ids_c, img_c = randomize_case(labels, affine, transform, seed=12)
    assert np.array_equal(ids_a, ids_b) and np.array_equal(img_a, img_b)
    assert np.abs(img_a - img_c).mean() > 0.05 and (ids_a != ids_c).mean() > 0.02
    assert ids_a.shape == labels.shape and img_a.dtype == np.float32 and 0.0 <= img_a.min() < img_a.max() <= 1.0
    assert (ids_a != labels).mean() > 0.02  # deformed
    # scaled like an ingested scan: zero outside the head, head percentiles 0.5/99.5 → 0/1
    head = img_a[ids_a != 0]
    assert (img_a[ids_a == 0] == 0).all() and np.percentile(head, 99.5) == pytest.approx(1.0, abs=0.01)
    assert set(np.unique(ids_a)) <= set(np.unique(labels))  # nearest neighbour: no new label values
    assert _group_r2(ids_a, img_a) > _group_r2(labels, img_a)  # the image follows the deformed labels


def test_image_is_painted_on_the_deformed_labels() -> None:
    """Without bias, blur, resolution loss or noise, the image is a GMM on the *deformed* label map."""
    labels, _, affine = toy_case(3)
    clean = RandomizeSettings(
        elastic_control_points=5,
        anisotropy_downsampling=(1.0, 1.0),
        blur_std_mm=(0.0, 0.0),
        noise_std=(0.0, 0.0),
        bias_coefficients=0.0,
    )
    for seed in range(3):
        ids, image = randomize_case(labels, affine, build_transform(clean), seed)
        assert _group_r2(ids, image) > 0.7 and _group_r2(ids, image) > _group_r2(labels, image) + 0.25


def test_dataset_folder_provenance_and_resume(toy_real: Path, tmp_path: Path) -> None:
    out = tmp_path / "rand"
    rows = randomize_dataset(toy_real, out, 8, 5, TINY)
    ds = LabelledDataset(out)
    source = LabelledDataset(toy_real)
    assert ds.case_ids == [f"rand{i:06d}" for i in range(8)] and ds.has_images
    manifest = ds.manifest.set_index("case_id")
    assert list(manifest["source_case"]) == [source.case_ids[i % 6] for i in range(8)]
    assert (manifest["source"] == "randomize").all() and (manifest["seed"] == 5).all()
    assert manifest["case_seed"].nunique() == 8
    for case in ds.case_ids[:3]:
        label, image = ds.label(case), ds.image(case)
        src = source.label(manifest.loc[case, "source_case"])
        assert label.shape == src.shape and np.allclose(label.affine, src.affine)
        vent = np.isin(label.data, VENTRICLE_IDS).sum() * np.prod(label.spacing) / 1000
        assert manifest.loc[case, "ventricle_ml"] == pytest.approx(vent)
        assert image.shape == label.shape
    first = ds.image("rand000000").data.copy()
    (out / "imagesTr" / "rand000007_0000.nii.gz").unlink()  # an interrupted run: the last case is missing
    randomize_dataset(toy_real, out, 8, 5, TINY)
    again = LabelledDataset(out)
    assert np.array_equal(again.image("rand000000").data, first)
    assert np.array_equal(again.image("rand000007").data, LabelledDataset(out).image("rand000007").data)
    pd.testing.assert_frame_equal(
        again.manifest,
        pd.DataFrame(rows).sort_values("case_id").reset_index(drop=True)[list(again.manifest.columns)],
        check_dtype=False,
    )


def test_bad_settings(toy_real: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="n=0"):
        randomize_dataset(toy_real, tmp_path / "r", 0, 1, TINY)
    with pytest.raises(InputError, match="must differ"):
        randomize_dataset(toy_real, toy_real, 2, 1, TINY)
    with pytest.raises(InputError, match="randomize settings"):
        randomize_dataset(toy_real, tmp_path / "r", 2, 1, RandomizeSettings(elastic_control_points=2))
