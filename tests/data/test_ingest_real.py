"""Ingest with real-shaped inputs: oblique thick-slice images, label maps on their own 1 mm grid, expert
ventricle masks, FreeSurfer subjects, unlabelled test scans — volumes kept within a few percent."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ingest_inputs import write_real_shaped, write_volume
from scipy import ndimage

from nph.data.dataset import SYNTHSEG, VENTRICLES, LabelledDataset, image_cases, read_manifest
from nph.data.grid import Grid, LabelResampling, to_grid
from nph.data.ingest import IngestOptions, LabelScheme, ingest
from nph.data.ingest_layouts import CaseSource, freesurfer_cases, image_only_cases, paired_cases
from nph.data.labels import aseg_to_synthseg
from nph.data.phantoms import make_phantom
from nph.errors import InputError
from nph.io.nifti import Volume, load_volume
from nph.segmentation.prediction import find_images

#: The thesis grid at half resolution, for inputs written with scale=2 (image 1.8×1.8×6 mm, labels 2 mm).
HALF = Grid(shape=(48, 64, 48), spacing=(3.334, 3.5, 3.334))
THESIS = Grid(shape=(96, 128, 96), spacing=(1.667, 1.75, 1.667))


def test_oblique_thick_slice_flair_with_1mm_labels_keeps_ventricle_volume(tmp_path) -> None:
    """The issue's first report, at full size: 0.9×0.9×3 mm oblique FLAIR, SynthSeg labels at 1 mm (LIA-stored)."""
    case = write_real_shaped(tmp_path / "p1_FLAIR.nii", tmp_path / "p1_synthseg.nii", seed=1, label_flips=(0, 1))
    report = ingest(
        paired_cases(str(tmp_path / "*FLAIR*"), str(tmp_path / "*synthseg*")),
        tmp_path / "out",
        IngestOptions(grid=THESIS),
    )
    assert report.written == ["p1"] and not report.failures
    row = report.manifest.iloc[0]
    assert row["ventricle_ml"] == pytest.approx(case.ventricle_ml, rel=0.01)
    assert row["icv_ml"] == pytest.approx(case.icv_ml, rel=0.01)
    assert json.loads(row["original_spacing"]) == pytest.approx([0.9, 0.9, 3.0], abs=1e-3)
    dataset = LabelledDataset(tmp_path / "out")
    label, image = dataset.label("p1").data, dataset.image("p1").data
    assert np.argwhere(np.isin(label, (4, 2)))[:, 0].mean() < THESIS.shape[0] / 2  # left stays left
    assert image.min() == 0.0 and image.max() == 1.0
    white, ventricle = np.median(image[np.isin(label, (2, 41))]), np.median(image[np.isin(label, (4, 43))])
    assert white > 0.5 > 0.2 > ventricle  # FLAIR contrast survives the oblique resampling


def test_half_scale_volumes_within_a_few_percent_and_one_hot_linear_beats_nearest(tmp_path) -> None:
    """Normal-sized ventricles (about 30-40 mL) on 3.3 mm voxels: linear within 3 %, nearest off by up to 4 %."""
    errors: dict[LabelResampling, list[float]] = {method: [] for method in LabelResampling}
    for seed in (2, 5):
        case = write_real_shaped(
            tmp_path / f"{seed}_T1w.nii.gz",
            tmp_path / f"{seed}_seg.nii.gz",
            seed=seed,
            scale=2.0,
            contrast="t1",
            enlargement=0.0,
        )
        for method in LabelResampling:
            report = ingest(
                [CaseSource("a", case.image, case.label)],
                tmp_path / f"out{seed}{method.value}",
                IngestOptions(grid=HALF, label_resampling=method),
            )
            errors[method].append(report.manifest.loc[0, "ventricle_ml"] / case.ventricle_ml - 1)
            assert report.manifest.loc[0, "icv_ml"] == pytest.approx(case.icv_ml, rel=0.015)
    assert max(abs(e) for e in errors[LabelResampling.LINEAR]) < 0.03
    assert max(abs(e) for e in errors[LabelResampling.NEAREST]) < 0.05
    assert np.mean(np.abs(errors[LabelResampling.LINEAR])) < np.mean(np.abs(errors[LabelResampling.NEAREST]))


def test_expert_ventricle_mask_makes_a_ventricle_only_dataset(tmp_path) -> None:
    case = write_real_shaped(
        tmp_path / "a_FLAIR.nii.gz", tmp_path / "a_mask.nii.gz", seed=3, scale=2.0, label_values="ventricles"
    )
    sources = [CaseSource("a", case.image, case.label)]
    with pytest.raises(InputError, match=r"a_mask\.nii\.gz: label ids \[0, 1\] look like a mask"):
        ingest(sources, tmp_path / "refused", IngestOptions(grid=HALF))
    assert not (tmp_path / "refused").exists()
    report = ingest(sources, tmp_path / "out", IngestOptions(grid=HALF, label_scheme=LabelScheme.VENTRICLES))
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert info["labels"] == {"background": 0, "ventricles": 1} and info["nph"]["label_scheme"] == VENTRICLES
    manifest = read_manifest(tmp_path / "out" / "manifest.csv")
    assert manifest.loc[0, "ventricle_ml"] == pytest.approx(case.ventricle_ml, rel=0.03)
    assert np.isnan(manifest.loc[0, ["icv_ml", "ventricle_fraction", "evans_index"]].astype(float)).all()
    assert ",,," in (tmp_path / "out" / "manifest.csv").read_text().splitlines()[1]  # empty, not 0
    assert report.manifest.loc[0, "label_scheme"] == "ventricles"
    with pytest.raises(InputError, match=r"a ventricle-only dataset .*this step needs label_scheme synthseg"):
        LabelledDataset(tmp_path / "out")
    dataset = LabelledDataset(tmp_path / "out", schemes=(SYNTHSEG, VENTRICLES))
    assert dataset.label_scheme == VENTRICLES and set(np.unique(dataset.label("a").data)) == {0, 1}
    assert dataset.ventricles("a").data.sum() * np.prod(HALF.spacing) / 1000 == pytest.approx(
        case.ventricle_ml, rel=0.03
    )


def test_freesurfer_subjects_dir_with_aseg_or_a_named_label_file(tmp_path) -> None:
    subjects = tmp_path / "subjects"
    truth = {}
    for subject, seed in (("bert", 4), ("ernie", 5)):
        mri = subjects / subject / "mri"
        truth[subject] = write_real_shaped(
            mri / "orig.mgz", mri / "aseg.mgz", seed=seed, scale=2.0, label_values="aseg", label_flips=(0, 2)
        )
        write_volume(
            mri / "synthseg.mgz", aseg_to_synthseg(truth[subject].labels, "truth"), truth[subject].label_affine
        )
    (subjects / "fsaverage" / "mri").mkdir(parents=True)
    (subjects / "nolabel" / "mri").mkdir(parents=True)
    write_volume(subjects / "nolabel" / "mri" / "T1.mgz", np.ones((8, 8, 8), np.float32))
    cases = freesurfer_cases(subjects)
    assert [(c.case_id, c.image.name, c.label.name) for c in cases] == [
        ("bert", "orig.mgz", "aseg.mgz"),
        ("ernie", "orig.mgz", "aseg.mgz"),
        ("nolabel", "T1.mgz", "aseg.mgz"),
    ]
    report = ingest(cases, tmp_path / "out", IngestOptions(grid=HALF))
    assert report.written == ["bert", "ernie"]
    assert [(f.case, f.problem) for f in report.failures] == [("nolabel", "no such file")]
    manifest = report.manifest.set_index("case_id")
    assert list(manifest["label_scheme"]) == ["aseg", "aseg"]
    for subject, case in truth.items():
        assert manifest.loc[subject, "ventricle_ml"] == pytest.approx(case.ventricle_ml, rel=0.03)
    named = ingest(
        freesurfer_cases(subjects, label_file="synthseg.mgz")[:2], tmp_path / "out2", IngestOptions(grid=HALF)
    )
    assert list(named.manifest["label_scheme"]) == ["synthseg", "synthseg"]
    assert list(named.manifest["ventricle_ml"]) == pytest.approx(list(manifest["ventricle_ml"]), rel=0.02)
    with pytest.raises(InputError, match=r"no <subject>/mri/ folders"):
        freesurfer_cases(tmp_path / "out")


def test_one_pair_needs_no_shared_case_id(tmp_path) -> None:
    mri = tmp_path / "bert" / "mri"
    write_real_shaped(mri / "T1.mgz", mri / "aseg.mgz", seed=6, scale=2.0, label_values="aseg")
    assert paired_cases(str(mri / "T1.mgz"), str(mri / "aseg.mgz")) == [
        CaseSource("bert", mri / "T1.mgz", mri / "aseg.mgz")
    ]
    write_real_shaped(tmp_path / "scan.nii.gz", tmp_path / "seg_final.nii.gz", seed=6, scale=2.0)
    assert [c.case_id for c in paired_cases(str(tmp_path / "scan.nii.gz"), str(tmp_path / "seg_final.nii.gz"))] == [
        "scan"
    ]


def test_unlabelled_test_scans_make_an_image_only_folder_scaled_like_training(tmp_path) -> None:
    case = write_real_shaped(tmp_path / "s1_FLAIR.nii.gz", tmp_path / "s1_synthseg.nii.gz", seed=7, scale=2.0)
    options = IngestOptions(grid=HALF)
    labelled = ingest(
        paired_cases(str(tmp_path / "*FLAIR*"), str(tmp_path / "*synthseg*")), tmp_path / "train", options
    )
    test = ingest(image_only_cases(str(tmp_path / "*FLAIR*")), tmp_path / "test", options)
    assert labelled.written == test.written == ["s1"]
    info = json.loads((tmp_path / "test" / "dataset.json").read_text())
    assert info["nph"]["has_labels"] is False and "labels" not in info and info["numTest"] == 1
    assert (
        image_cases(tmp_path / "test")
        == find_images(tmp_path / "test")
        == {"s1": tmp_path / "test" / "imagesTs" / "s1_0000.nii.gz"}
    )
    assert not (tmp_path / "test" / "labelsTr").exists() and not (tmp_path / "test" / "imagesTr").exists()
    row = read_manifest(tmp_path / "test" / "manifest.csv").iloc[0]
    assert row["label"] == "" and np.isnan(row["ventricle_ml"])
    with pytest.raises(InputError, match=r"an image-only folder .*use it as input= of nph nnunet predict"):
        LabelledDataset(tmp_path / "test")
    # one normalisation from the image alone: the test scan's brain lands on the training scan's scale
    train_image = LabelledDataset(tmp_path / "train").image("s1").data
    train_label = LabelledDataset(tmp_path / "train").label("s1").data
    test_image = load_volume(tmp_path / "test" / "imagesTs" / "s1_0000.nii.gz").data
    brain = np.isin(train_label, (2, 41))
    assert np.percentile(test_image[test_image > 0.05], 50) == pytest.approx(
        np.percentile(train_image[train_image > 0.05], 50), abs=0.02
    )
    assert np.median(train_image[brain]) > 0.5
    with pytest.raises(InputError, match=r"holds an image-only dataset, these cases would make a label_scheme"):
        ingest([CaseSource("s1", case.image, case.label)], tmp_path / "test", options)
    with pytest.raises(InputError, match=r"has no label map while other cases have one"):
        ingest([CaseSource("s1", case.image, case.label), CaseSource("s2", case.image)], tmp_path / "mix", options)


def test_a_head_with_skull_and_scalp_passes_and_a_shifted_label_map_is_refused() -> None:
    """Real heads have a dark skull and a bright scalp around the brain: the right pairing passes, shifts of
    25-30 mm (the label map over skull, scalp and air) are refused naming both files."""
    spacing = (2.0, 2.0, 2.0)
    phantom = make_phantom(3, shape=(80, 112, 80), spacing=spacing)
    outside = ndimage.distance_transform_edt(phantom.label_ids == 0, sampling=spacing)
    image = phantom.image * 800.0
    image[(outside > 0) & (outside <= 5)] = 30.0  # skull
    image[(outside > 5) & (outside <= 10) & (np.indices(image.shape)[2] >= 15)] = 600.0  # scalp, open at the neck
    image += np.abs(np.random.default_rng(0).normal(0.0, 8.0, image.shape))
    gridded = to_grid(Volume(phantom.label_ids, phantom.affine), HALF, Volume(image, phantom.affine))
    assert gridded.icv_retained > 0.99
    for axis, mm in ((0, 25.0), (1, 30.0), (2, 25.0)):
        moved = phantom.affine.copy()
        moved[axis, 3] += mm
        with pytest.raises(InputError, match=r"^seg\.nii: does not describe the head in scan\.nii: "):
            to_grid(
                Volume(phantom.label_ids, moved),
                HALF,
                Volume(image, phantom.affine),
                label_source="seg.nii",
                image_source="scan.nii",
            )
