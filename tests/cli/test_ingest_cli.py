"""``nph ingest`` end to end: globs and LDM100k layout, one-line errors with exit 2, filters, resume."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
from ingest_inputs import aseg_version, head_image, head_labels, write_pair, write_volume

from nph.data.dataset import LabelledDataset, image_cases
from nph.io.nifti import load_volume

TINY_SHAPE = (32, 48, 32)


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    """The command logs at INFO (pytest's log capture, not stderr, receives it in tests)."""
    caplog.set_level(logging.INFO)


@pytest.fixture
def scans(tmp_path):
    """Three good cases (RAS, LAS .mgz, aseg ids); returns the image and label globs."""
    write_pair(tmp_path / "in" / "p1_FLAIR.nii.gz", tmp_path / "in" / "p1_synthseg.nii.gz", seed=1)
    write_pair(tmp_path / "in" / "p2_FLAIR.mgz", tmp_path / "in" / "p2_synthseg.mgz", seed=2, flips=(0,))
    write_pair(tmp_path / "in" / "p3_FLAIR.nii.gz", tmp_path / "in" / "p3_synthseg.nii.gz", seed=3,
               labels=aseg_version(head_labels()))
    return f"images={tmp_path}/in/*_FLAIR.*", f"labels={tmp_path}/in/*_synthseg.*"


def test_paired_globs_make_a_dataset_on_the_experiment_grid(run_nph, tmp_path, scans, caplog) -> None:
    result = run_nph("ingest", *scans, f"out={tmp_path}/out", "experiment=tiny")
    assert result.status == 0, result.err
    assert "3/3" in result.err and "case/s" in result.err  # progress bar with a rate
    assert "experiment: tiny" in caplog.text and "cases/s" in caplog.text  # config printed, final rate
    dataset = LabelledDataset(tmp_path / "out")
    assert dataset.case_ids == ["p1", "p2", "p3"] and dataset.has_images
    assert list(dataset.manifest["label_scheme"]) == ["synthseg", "synthseg", "aseg"]
    assert set(dataset.manifest["source"]) == {"ingest"} and dataset.info["nph"]["source"] == "ingest"
    assert dataset.info["nph"]["ingest_options"]["shape"] == list(TINY_SHAPE)
    for case_id in dataset.case_ids:
        image = dataset.image(case_id)
        assert image.shape == TINY_SHAPE and image.spacing == pytest.approx((5.0, 4.667, 5.0))
        assert image.data.min() >= 0.0 and image.data.max() == 1.0
    assert np.array_equal(dataset.label("p1").data, dataset.label("p2").data)  # LAS .mgz: same anatomy
    assert not (tmp_path / "out" / "ingest_errors.csv").exists()


def test_bad_cases_exit_2_with_one_line_each_and_keep_the_rest(run_nph, tmp_path, scans, caplog) -> None:
    out = tmp_path / "out"
    assert run_nph("ingest", *scans, f"out={out}", "experiment=tiny").status == 0
    before = {p.name: p.stat().st_mtime_ns for p in (out / "imagesTr").iterdir()}
    (tmp_path / "in" / "p4_FLAIR.nii.gz").write_bytes(b"corrupt")
    write_volume(tmp_path / "in" / "p4_synthseg.nii.gz", head_labels())
    unknown = head_labels()
    unknown[10:12, 20, 20] = 777
    write_pair(tmp_path / "in" / "p5_FLAIR.nii.gz", tmp_path / "in" / "p5_synthseg.nii.gz", labels=unknown)
    shifted = np.eye(4)
    shifted[0, 3] = 25.0  # the label map lies 25 mm to the right of its image's head: a wrong pairing
    write_pair(tmp_path / "in" / "p6_FLAIR.nii.gz", tmp_path / "in" / "p6_synthseg.nii.gz")
    write_volume(tmp_path / "in" / "p6_synthseg.nii.gz", head_labels(), affine=shifted)
    result = run_nph("ingest", *scans, f"out={out}", "experiment=tiny")
    assert result.status == 2
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    corrupt = [line for line in lines if "p4_FLAIR.nii.gz: cannot read as NIfTI/MGZ" in line]
    unknown_id = [line for line in lines if "p5_synthseg.nii.gz: label ids [777]" in line]
    mismatch = [line for line in lines if "p6_synthseg.nii.gz: does not describe the head in" in line
                and "p6_FLAIR.nii.gz" in line]
    assert len(corrupt) == len(unknown_id) == len(mismatch) == 1
    assert result.err.splitlines()[-1] == (
        f"nph ingest: error: 3 of 6 cases failed (listed above and in {out}/ingest_errors.csv); "
        f"the other 3 were written to {out}")
    with open(out / "ingest_errors.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["case"], r["file"].rsplit("/", 1)[1]) for r in rows] == [
        ("p4", "p4_FLAIR.nii.gz"), ("p5", "p5_synthseg.nii.gz"), ("p6", "p6_synthseg.nii.gz")]
    assert LabelledDataset(out).case_ids == ["p1", "p2", "p3"]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "imagesTr").iterdir()} == before  # resumed, untouched
    assert "resuming: 3 of 6 cases" in caplog.text


def _binary(tmp: Path) -> None:
    write_pair(tmp / "a_T1w.nii.gz", tmp / "a_seg.nii.gz")
    write_volume(tmp / "a_seg.nii.gz", np.isin(head_labels(), (4, 43, 14)).astype(np.int16))


def _binary_synthseg_ids(tmp: Path) -> None:
    write_pair(tmp / "a_T1w.nii.gz", tmp / "a_seg.nii.gz")
    write_volume(tmp / "a_seg.nii.gz", np.where(np.isin(head_labels(), (4, 43)), 4, 0).astype(np.int16))


def _fractional(tmp: Path) -> None:
    write_pair(tmp / "a_T1w.nii.gz", tmp / "a_seg.nii.gz")
    write_volume(tmp / "a_seg.nii.gz", np.where(head_labels() == 4, 2.5, head_labels()).astype(np.float32))


def _no_head(tmp: Path) -> None:
    write_volume(tmp / "a_T1w.nii.gz", np.zeros((40, 48, 40), np.float32))
    write_volume(tmp / "a_seg.nii.gz", head_labels())


def _shifted(tmp: Path) -> None:
    write_pair(tmp / "a_T1w.nii.gz", tmp / "a_seg.nii.gz")
    shifted = np.eye(4)
    shifted[2, 3] = 25.0
    write_volume(tmp / "a_seg.nii.gz", head_labels(), affine=shifted)


def _conflicting_ids(tmp: Path) -> None:
    write_pair(tmp / "a_T1w.nii.gz", tmp / "a_seg.nii.gz")
    write_pair(tmp / "b_T1w.nii.gz", tmp / "c_seg.nii.gz")


def _conflicting_single_pair(tmp: Path) -> None:
    write_pair(tmp / "sub-01_T1w.nii.gz", tmp / "sub-02_seg.nii.gz")


def _slice_stack(tmp: Path) -> None:
    write_pair(tmp / "a_T1w.nii.gz", tmp / "a_seg.nii.gz")
    write_volume(tmp / "a_T1w.nii.gz", head_image(head_labels())[:, :, 20:21])


def _series(tmp: Path) -> None:
    write_pair(tmp / "a_T1w.nii.gz", tmp / "a_seg.nii.gz")
    write_volume(tmp / "a_T1w.nii.gz", np.stack([head_image(head_labels(), seed=s) for s in range(3)], axis=-1))


def _not_finite(tmp: Path) -> None:
    write_pair(tmp / "a_T1w.nii.gz", tmp / "a_seg.nii.gz")
    image = head_image(head_labels())
    image[20, 20, 20], image[3, 3, 3] = np.inf, np.nan
    write_volume(tmp / "a_T1w.nii.gz", image)


@pytest.mark.parametrize(
    ("make", "scheme", "message"),
    [
        (_binary, "auto", "a_seg.nii.gz: label ids [0, 1] look like a mask, not a whole-brain segmentation; "
                          "label_scheme=auto will not guess: choose label_scheme=ventricles (0 background, any "
                          "other value ventricle) or label_scheme=aseg"),
        (_binary_synthseg_ids, "auto", "a_seg.nii.gz: label ids [0, 4] look like a mask, not a whole-brain "
                                       "segmentation; label_scheme=auto will not guess: choose label_scheme="
                                       "ventricles (0 background, any other value ventricle), label_scheme=synthseg"),
        (_fractional, "synthseg", "a_seg.nii.gz: label map has non-integer values (e.g. 2.5)"),
        (_fractional, "ventricles", "a_seg.nii.gz: label map has non-integer values (e.g. 2.5)"),
        (_no_head, "auto", "a_T1w.nii.gz: no head found (the image is constant, 0)"),
        (_shifted, "auto", "a_seg.nii.gz: does not describe the head in "),
        (_conflicting_ids, "auto", "cannot pair them by case id (2 images and 2 labels; images without a label: "),
        (_conflicting_single_pair, "auto", "sub-02_seg.nii.gz: case ids 'sub-01' and 'sub-02' conflict (two "
                                           "different cases?)"),
        (_slice_stack, "auto", "a_T1w.nii.gz: shape (40, 48, 1) is a 2D slice stack, not a 3D volume"),
        (_series, "auto", "a_T1w.nii.gz: a 4D series of 3 volumes (shape (40, 48, 40, 3)), not one 3D volume"),
        (_not_finite, "auto", "a_T1w.nii.gz: contains 2 NaN or infinite values"),
    ],
    ids=["binary-auto", "binary-synthseg-id-auto", "fractional", "fractional-ventricles", "no-head", "shifted-25mm",
         "conflicting-ids", "conflicting-single-pair", "slice-stack", "4d-series", "nan-inf"],
)
def test_bad_input_is_one_line_naming_the_file_exit_2_nothing_written(run_nph, tmp_path, make, scheme,
                                                                     message) -> None:
    make(tmp_path)
    result = run_nph("ingest", f"images={tmp_path}/*_T1w.nii.gz", f"labels={tmp_path}/*_seg.nii.gz",
                     f"out={tmp_path}/out", "experiment=tiny", f"label_scheme={scheme}")
    last = result.err.splitlines()[-1]
    assert result.status == 2 and message in last and str(tmp_path) in last, result.err
    assert not (tmp_path / "out").exists()


def test_nothing_usable_among_several_exits_2_and_writes_nothing(run_nph, tmp_path, caplog) -> None:
    (tmp_path / "a_T1w.nii").write_bytes(b"garbage")
    write_volume(tmp_path / "a_seg.nii", head_labels())
    write_volume(tmp_path / "b_T1w.nii", np.zeros((40, 48, 40), np.float32))
    write_volume(tmp_path / "b_seg.nii", head_labels())
    result = run_nph("ingest", f"images={tmp_path}/*_T1w.nii", f"labels={tmp_path}/*_seg.nii",
                     f"out={tmp_path}/out", "experiment=tiny")
    assert result.status == 2 and "no usable case among 2 (2 failed, 0 filtered out); nothing written" in result.err
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]  # at the end, one line each
    assert len(errors) == 2 and errors[0].startswith(f"{tmp_path}/a_T1w.nii: cannot read as NIfTI/MGZ")
    assert errors[1] == f"{tmp_path}/b_T1w.nii: no head found (the image is constant, 0) (case b)"
    assert not (tmp_path / "out").exists()


def test_ldm100k_layout_with_thick_slices_filtered(run_nph, tmp_path, caplog) -> None:
    root = tmp_path / "ldm"
    for sub, affine in (("sub-a", None), ("sub-b", np.diag([1.0, 1.0, 2.5, 1.0])), ("sub-c", None)):
        write_pair(root / "rawdata" / sub / "anat" / f"{sub}_T1w.nii.gz",
                   root / "masks" / sub / "anat" / f"{sub}_T1w.nii.gz", affine=affine)
    (root / "rawdata" / "sub-c" / "anat" / "sub-c_T1w.json").write_text('{"SliceThickness": 3.0}')
    result = run_nph("ingest", "layout=ldm100k", f"root={root}", f"out={tmp_path}/out", "experiment=tiny",
                     "filters.max_slice_thickness_mm=2.0")
    assert result.status == 0, result.err
    assert "filtered out sub-b: slice thickness 2.5 mm (header spacing) > max_slice_thickness_mm=2.0" in caplog.text
    assert "filtered out sub-c: slice thickness 3 mm (sidecar) > max_slice_thickness_mm=2.0" in caplog.text
    assert LabelledDataset(tmp_path / "out").case_ids == ["sub-a"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["layout=bids"], "layout: 'bids' is not one of paired, freesurfer, ldm100k"),
        (["layout=ldm100k"], "root: layout=ldm100k needs root=DIR"),
        (["layout=freesurfer"], "root: layout=freesurfer needs root=DIR"),
        (["labels=x*"], "images: layout=paired needs images=GLOB"),
        (["images=/nonexistent/*.nii"], "images=/nonexistent/*.nii: no files match"),
        (["layout=freesurfer", "root=/nonexistent"], "/nonexistent: no such folder (layout=freesurfer expects"),
        (["layout=ldm100k", "root=/", "label_resampling=cubic"], "label_resampling: 'cubic' is not one of linear"),
        (["images=/nonexistent/*.nii", "labels=/nonexistent/*.nii"], "images=/nonexistent/*.nii: no files match"),
        (["layout=ldm100k", "root=/"], "/rawdata: no such folder"),
        (["layout=ldm100k", "root=/", "filters.bogus=1"], "bad configuration"),
        (["layout=ldm100k", "root=/", "percentiles=[1]"], "percentiles: expected [low, high], got [1]"),
        (["layout=ldm100k", "root=/", "filters.require_3d=maybe"], "require_3d: expected true or false, got 'maybe'"),
        (["layout=ldm100k", "root=/", "workers=two"], "workers: expected a whole number, got 'two'"),
        (["layout=ldm100k", "root=/", "grid.spacing=[1,a,1]"], "spacing: expected a list of numbers, got [1, 'a', 1]"),
    ],
)
def test_bad_settings_are_one_line_exit_2(run_nph, tmp_path, args, message) -> None:
    result = run_nph("ingest", f"out={tmp_path}/out", "experiment=tiny", *args)
    assert result.status == 2 and message in result.err.splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_bad_label_scheme_and_grid_are_named(run_nph, tmp_path, scans) -> None:
    result = run_nph("ingest", *scans, f"out={tmp_path}/out", "label_scheme=fs")
    assert result.status == 2 and result.err.splitlines()[-1].endswith(
        "label_scheme: 'fs' is not one of auto, synthseg, aseg, ventricles")
    result = run_nph("ingest", *scans, f"out={tmp_path}/out", "grid.shape=[8,8]")
    assert result.status == 2 and "grid.shape: expected three positive integers, got [8, 8]" in result.err
    assert not (tmp_path / "out").exists()


def test_expert_masks_as_ventricles_and_the_ldms_refuse_them(run_nph, tmp_path) -> None:
    for case in ("a", "b"):
        write_pair(tmp_path / "in" / f"{case}_FLAIR.nii.gz", tmp_path / "in" / f"{case}_mask.nii.gz")
        write_volume(tmp_path / "in" / f"{case}_mask.nii.gz", np.isin(head_labels(), (4, 43, 14)).astype(np.uint8))
    out = tmp_path / "out"
    result = run_nph("ingest", f"images={tmp_path}/in/*_FLAIR.nii.gz", f"labels={tmp_path}/in/*_mask.nii.gz",
                     f"out={out}", "grid.shape=[24,28,24]", "grid.spacing=[1.667,1.75,1.667]",
                     "label_scheme=ventricles")
    assert result.status == 0, result.err
    dataset = LabelledDataset(out, schemes=("synthseg", "ventricles"))
    source_ml = float(np.isin(head_labels(), (4, 43, 14)).sum()) / 1000
    assert list(dataset.manifest["ventricle_ml"]) == pytest.approx([source_ml, source_ml], rel=0.05)
    assert dataset.manifest["icv_ml"].isna().all() and dataset.manifest["ventricle_fraction"].isna().all()
    for stage in ("mask_ae", "image_ae"):
        result = run_nph("train", f"stage={stage}", f"data={out}", f"models={tmp_path}/models", "experiment=tiny")
        assert result.status == 2 and result.err.splitlines()[-1] == (
            f"nph train: error: data={out}: a label_scheme=ventricles dataset (no ICV); the LDMs train on "
            "SynthSeg-labelled datasets (label_scheme=synthseg or aseg at nph ingest)")
    assert not (tmp_path / "models").exists()


def test_unlabelled_scans_feed_synthseg_through_the_image_only_folder(run_nph, tmp_path, monkeypatch) -> None:
    """`nph ingest images=GLOB out=DIR` then `nph synthseg input=DIR` (SynthSeg TEST DOUBLE: no weights here)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segmentation"))
    from test_synthseg import install_double

    for case, seed in (("t1", 1), ("t2", 2)):
        write_pair(tmp_path / "in" / f"{case}_FLAIR.nii.gz", tmp_path / "in" / f"{case}_synthseg.nii.gz", seed=seed)
    grid = ("grid.shape=[24,28,24]", "grid.spacing=[1.667,1.75,1.667]")
    labelled, test = tmp_path / "labelled", tmp_path / "test"
    assert run_nph("ingest", f"images={tmp_path}/in/*_FLAIR.nii.gz", f"labels={tmp_path}/in/*_synthseg.nii.gz",
                   f"out={labelled}", *grid).status == 0
    result = run_nph("ingest", f"images={tmp_path}/in/*_FLAIR.nii.gz", f"out={test}", *grid)
    assert result.status == 0, result.err
    assert sorted(p.name for p in (test / "imagesTs").iterdir()) == ["t1_0000.nii.gz", "t2_0000.nii.gz"]
    for key, value in install_double(tmp_path / "bin", labelled / "labelsTr", tmp_path / "argv.jsonl").items():
        monkeypatch.setenv(key, value)
    result = run_nph("synthseg", f"input={test}", f"out={tmp_path / 'pred'}", "robust=false", "qc=false")
    assert result.status == 0, result.err
    for case in ("t1", "t2"):
        predicted = load_volume(tmp_path / "pred" / f"{case}.nii.gz", integer=True)
        image = load_volume(test / "imagesTs" / f"{case}_0000.nii.gz")
        assert predicted.shape == image.shape and np.allclose(predicted.affine, image.affine)
        truth = LabelledDataset(labelled).label(case).data
        assert np.isin(predicted.data, (4, 43)).sum() == pytest.approx(np.isin(truth, (4, 43)).sum(), rel=0.1)


def test_freesurfer_layout_through_the_cli(run_nph, tmp_path) -> None:
    subjects = tmp_path / "subjects"
    for subject, seed in (("bert", 1), ("ernie", 2)):
        mri = subjects / subject / "mri"
        write_pair(mri / "T1.mgz", mri / "aseg.mgz", seed=seed, flips=(0, 2), labels=aseg_version(head_labels()))
        write_volume(mri / "synthseg.mgz", head_labels(), flips=(0, 2))
    result = run_nph("ingest", "layout=freesurfer", f"root={subjects}", f"out={tmp_path}/aseg", "experiment=tiny")
    assert result.status == 0, result.err
    dataset = LabelledDataset(tmp_path / "aseg")
    assert dataset.case_ids == ["bert", "ernie"] and set(dataset.manifest["label_scheme"]) == {"aseg"}
    result = run_nph("ingest", "layout=freesurfer", f"root={subjects}", "label_file=synthseg.mgz",
                     f"out={tmp_path}/synthseg", "experiment=tiny")
    assert result.status == 0, result.err
    named = LabelledDataset(tmp_path / "synthseg")
    assert set(named.manifest["label_scheme"]) == {"synthseg"}
    assert list(named.manifest["ventricle_ml"]) == pytest.approx(list(dataset.manifest["ventricle_ml"]), rel=0.05)
    result = run_nph("ingest", "layout=freesurfer", f"root={subjects}", "label_file=null", f"out={tmp_path}/test",
                     "experiment=tiny")
    assert result.status == 0, result.err
    assert sorted(image_cases(tmp_path / "test")) == ["bert", "ernie"]
