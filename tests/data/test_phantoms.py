"""Phantoms: geometry, determinism, enlargement that pushes (not overwrites), contrasts, dataset folder rules."""

from __future__ import annotations

import numpy as np
import pytest

from nph.data.dataset import LabelledDataset
from nph.data.labels import LABEL_IDS, VENTRICLE_IDS
from nph.data.measures import measure
from nph.data.phantoms import case_draws, make_phantom, write_phantom_dataset
from nph.errors import InputError

TINY = {"shape": (32, 48, 32), "spacing": (5.0, 4.667, 5.0)}
THESIS_SHAPE = (96, 128, 96)
DEEP_GREY = {"thalamus": (10, 49), "caudate": (11, 50), "putamen": (12, 51), "pallidum": (13, 52),
             "hippocampus": (17, 53), "amygdala": (18, 54), "accumbens": (26, 58), "ventral DC": (28, 60)}


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def thesis_series():
    """Two subjects at enlargement 0, 0.5 and 1 on the thesis grid: {(seed, e): (phantom, measurements)}."""
    out = {}
    for seed in (0, 1):
        for e in (0.0, 0.5, 1.0):
            phantom = make_phantom(seed, enlargement=e)
            out[seed, e] = (phantom, measure(phantom.label_ids, phantom.affine))
    return out


def test_geometry_types_and_image_range() -> None:
    phantom = make_phantom(3, enlargement=0.7, **TINY)
    assert phantom.label_ids.shape == phantom.image.shape == (32, 48, 32)
    assert phantom.label_ids.dtype == np.int16 and phantom.image.dtype == np.float32
    assert np.allclose(np.diag(phantom.affine), [5.0, 4.667, 5.0, 1.0])
    assert np.allclose(phantom.affine @ [15.5, 23.5, 15.5, 1.0], [0, 0, 0, 1])  # origin at the grid centre
    rotation = phantom.affine[:3, :3]
    assert np.all(np.diag(rotation) > 0) and np.count_nonzero(rotation - np.diag(np.diag(rotation))) == 0  # RAS+
    assert phantom.enlargement == 0.7
    assert set(np.unique(phantom.label_ids)) <= set(LABEL_IDS)
    head = phantom.label_ids != 0
    assert phantom.image.min() >= 0.0 and phantom.image.max() == 1.0
    assert np.all(phantom.image[~head] == 0.0)  # background 0
    assert phantom.image[head].mean() > 0.3 and np.percentile(phantom.image[head], 99.5) == pytest.approx(1.0, abs=1e-3)
    # RAS+: left hemisphere ids at low x, right at high x; the head is centred
    x = np.arange(32)[:, None, None]
    assert np.mean(np.broadcast_to(x, head.shape)[phantom.label_ids == 2]) < 15.5
    assert np.mean(np.broadcast_to(x, head.shape)[phantom.label_ids == 41]) > 15.5
    assert not head[0].any() and not head[-1].any() and not head[:, 0].any() and not head[:, :, -1].any()


def test_anatomy_is_oriented_superior_anterior() -> None:
    labels = make_phantom(2, **TINY).label_ids
    y = np.broadcast_to(np.arange(48)[None, :, None], labels.shape)
    z = np.broadcast_to(np.arange(32)[None, None, :], labels.shape)
    cerebellum = np.isin(labels, (7, 8, 46, 47))
    assert z[cerebellum].mean() < z[np.isin(labels, (4, 43))].mean()  # cerebellum below the ventricles
    assert y[cerebellum].mean() < y[np.isin(labels, (11, 50))].mean()  # caudate heads in front of it
    assert z[labels == 16].min() < z[cerebellum].min() + 3  # brain-stem runs down to the cord


def test_same_seed_same_arrays_other_seed_differs() -> None:
    a, b = make_phantom(7, enlargement=0.3, **TINY), make_phantom(7, enlargement=0.3, **TINY)
    assert np.array_equal(a.label_ids, b.label_ids) and np.array_equal(a.image, b.image)
    c = make_phantom(8, enlargement=0.3, **TINY)
    assert not np.array_equal(a.label_ids, c.label_ids) and not np.array_equal(a.image, c.image)
    t1 = make_phantom(7, enlargement=0.3, contrast="t1", **TINY)
    assert np.array_equal(a.label_ids, t1.label_ids)  # contrast does not change the subject


def test_dataset_bytes_are_reproducible_and_case_i_ignores_n_and_workers(tmp_path) -> None:
    pooled = write_phantom_dataset(tmp_path / "a", 3, 11, workers=2, **TINY)
    write_phantom_dataset(tmp_path / "b", 3, 11, workers=1, **TINY)
    write_phantom_dataset(tmp_path / "c", 1, 11, **TINY)
    write_phantom_dataset(tmp_path / "d", 1, 12, **TINY)
    a, b, c, d = (_files(tmp_path / name) for name in "abcd")
    assert a == b and len(a) == 2 + 2 * 3  # dataset.json, manifest.csv, 3 images, 3 labels
    for name in ("imagesTr/phantom_0000_0000.nii.gz", "labelsTr/phantom_0000.nii.gz"):
        assert c[name] == a[name] and d[name] != a[name]
    enlargement, anatomy_seed = case_draws(11, 2, (0.0, 1.0))
    row = pooled.iloc[2]
    assert row["case_id"] == "phantom_0002" and row["enlargement"] == enlargement
    assert row["anatomy_seed"] == anatomy_seed and (row["source"], row["seed"], row["index"]) == ("phantom", 11, 2)
    assert row["contrast"] == "flair"


def test_manifest_measures_what_is_on_disk(tmp_path) -> None:
    manifest = write_phantom_dataset(tmp_path / "ds", 2, 5, enlargement_range=(0.4, 0.4), contrast="t1", **TINY)
    dataset = LabelledDataset(tmp_path / "ds")
    assert dataset.case_ids == ["phantom_0000", "phantom_0001"] and dataset.has_images
    assert dataset.info["channel_names"] == {"0": "T1"} and dataset.info["nph"]["phantom"]["seed"] == 5
    assert list(manifest["enlargement"]) == [0.4, 0.4]
    for case_id, row in zip(dataset.case_ids, manifest.itertuples(), strict=True):
        label = dataset.label(case_id)
        expected = make_phantom(int(row.anatomy_seed), enlargement=0.4, contrast="t1", **TINY)
        assert np.array_equal(label.data, expected.label_ids)
        assert np.allclose(dataset.image(case_id).data, expected.image)
        assert row.ventricle_ml == pytest.approx(measure(label.data, label.affine).ventricle_ml)


def test_enlargement_grows_ventricles_and_evans_index_monotonically(thesis_series) -> None:
    for seed in (0, 1):
        fractions = [thesis_series[seed, e][1].ventricle_fraction for e in (0.0, 0.5, 1.0)]
        evans = [thesis_series[seed, e][1].evans_index for e in (0.0, 0.5, 1.0)]
        assert fractions[0] < fractions[1] < fractions[2]
        assert evans[0] < evans[1] < evans[2]
        icv = {thesis_series[seed, e][1].icv_ml for e in (0.0, 0.5, 1.0)}
        assert len(icv) == 1  # the skull does not move


def test_healthy_and_nph_land_in_clinical_ranges(thesis_series) -> None:
    for seed in (0, 1):
        healthy, nph = thesis_series[seed, 0.0][1], thesis_series[seed, 1.0][1]
        assert 0.015 <= healthy.ventricle_fraction <= 0.03 and healthy.evans_index < 0.3
        assert 0.07 <= nph.ventricle_fraction <= 0.15 and 0.3 <= nph.evans_index <= 0.45
        assert 1100 < healthy.icv_ml < 1900  # an adult intracranial volume
        for e in (0.0, 1.0):  # every SynthSeg structure at the thesis grid
            assert set(np.unique(thesis_series[seed, e][0].label_ids)) == set(LABEL_IDS)


def test_enlarged_ventricles_push_deep_grey_matter_aside(thesis_series) -> None:
    for seed in (0, 1):
        healthy, nph = thesis_series[seed, 0.0][0].label_ids, thesis_series[seed, 1.0][0].label_ids
        for name, ids in DEEP_GREY.items():
            before, after = np.isin(healthy, ids).sum(), np.isin(nph, ids).sum()
            assert after >= 0.8 * before, f"{name}: {after} voxels at e=1 vs {before} at e=0"
        thalamus = np.argwhere(np.isin(nph, (10, 49))).mean(axis=0)
        assert not np.array_equal(thalamus, np.argwhere(np.isin(healthy, (10, 49))).mean(axis=0))  # it moved
        white = np.isin(nph, (2, 41)).sum() / np.isin(healthy, (2, 41)).sum()
        assert white > 0.9  # the room comes from the extracerebral CSF, squeezed out against the skull
        assert (nph == 24).sum() < 0.8 * (healthy == 24).sum()


@pytest.mark.parametrize("contrast", ["flair", "t1"])
def test_tissue_contrast_ordering(contrast: str) -> None:
    phantom = make_phantom(0, enlargement=0.5, contrast=contrast)
    labels, image = phantom.label_ids, phantom.image
    means = {name: image[np.isin(labels, ids)].mean() for name, ids in
             {"ventricles": VENTRICLE_IDS, "wm": (2, 41), "cortex": (3, 42), "csf": (24,)}.items()}
    assert means["ventricles"] < 0.25 and means["csf"] < 0.4
    if contrast == "flair":
        assert means["ventricles"] < means["wm"] - 0.2 and means["wm"] < means["cortex"] - 0.1
    else:
        assert means["ventricles"] < means["cortex"] - 0.2 and means["cortex"] < means["wm"] - 0.15


def test_flair_periventricular_hyperintensity_grows_with_enlargement(thesis_series) -> None:
    """White matter next to the ventricles is brighter than deep white matter, more so in NPH."""
    from scipy import ndimage

    contrasts = []
    for e in (0.0, 1.0):
        phantom = thesis_series[0, e][0]
        near = ndimage.binary_dilation(np.isin(phantom.label_ids, VENTRICLE_IDS), iterations=2)
        white = np.isin(phantom.label_ids, (2, 41))
        contrasts.append(phantom.image[white & near].mean() - phantom.image[white & ~near].mean())
    assert contrasts[0] > -0.05 and contrasts[1] > contrasts[0] + 0.02


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"seed": -1}, "seed"), ({"shape": (32, 48)}, "shape"), ({"shape": (32, 0, 32)}, "shape"),
     ({"spacing": (5.0, -1.0, 5.0)}, "spacing"), ({"contrast": "pd"}, "contrast"),
     ({"enlargement": -0.1}, "enlargement"), ({"enlargement": float("nan")}, "enlargement"),
     ({"enlargement": "big"}, "enlargement"), ({"seed": 1.5}, "seed")],
)
def test_make_phantom_rejects_bad_arguments(kwargs, key) -> None:
    args = {"seed": 0, **TINY, **kwargs}
    with pytest.raises(InputError, match=f"^{key}: "):
        make_phantom(args.pop("seed"), **args)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"n": 0}, "n"), ({"workers": 0}, "workers"), ({"enlargement_range": (1.0, 0.0)}, "ventricles"),
     ({"enlargement_range": (0.5,)}, "ventricles"), ({"contrast": "T2"}, "contrast")],
)
def test_write_dataset_rejects_bad_arguments_before_writing(tmp_path, kwargs, key) -> None:
    args = {"n": 1, "seed": 0, **TINY, **kwargs}
    with pytest.raises(InputError, match=f"^{key}: "):
        write_phantom_dataset(tmp_path / "out", args.pop("n"), args.pop("seed"), **args)
    assert not (tmp_path / "out").exists()


def test_a_folder_with_another_dataset_is_refused_unless_overwrite(tmp_path) -> None:
    out = tmp_path / "ds"
    write_phantom_dataset(out, 2, 1, **TINY)
    before = _files(out)
    write_phantom_dataset(out, 2, 1, **TINY)  # the same dataset again: allowed, same bytes
    assert _files(out) == before
    with pytest.raises(InputError, match=r"^out: .* already holds a different dataset"):
        write_phantom_dataset(out, 2, 2, **TINY)
    assert _files(out) == before
    manifest = write_phantom_dataset(out, 1, 2, overwrite=True, **TINY)
    after = _files(out)
    assert list(manifest["case_id"]) == ["phantom_0000"] and "labelsTr/phantom_0001.nii.gz" not in after
    assert after["labelsTr/phantom_0000.nii.gz"] != before["labelsTr/phantom_0000.nii.gz"]
    interrupted = tmp_path / "interrupted"  # a killed run leaves case files only: a rerun finishes it
    (interrupted / "labelsTr").mkdir(parents=True)
    (interrupted / "labelsTr" / "phantom_0005.nii.gz").write_bytes(b"stale")
    write_phantom_dataset(interrupted, 1, 0, **TINY)
    assert sorted(_files(interrupted)) == ["dataset.json", "imagesTr/phantom_0000_0000.nii.gz",
                                           "labelsTr/phantom_0000.nii.gz", "manifest.csv"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"^out: .* is not a folder"):
        write_phantom_dataset(tmp_path / "file", 1, 0, **TINY)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"^out: .* not empty"):
        write_phantom_dataset(other, 1, 0, **TINY)
    assert _files(other) == {"notes.txt": b"mine"}
