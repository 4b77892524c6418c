"""Ingest as a library: layouts and case ids, orientation and formats, aseg ids, filters, bad cases, resume."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from ingest_inputs import aseg_version, head_labels, write_pair, write_volume
from scipy import ndimage

from nph.data.dataset import DatasetPaths, LabelledDataset, finalize, write_case
from nph.data.grid import Grid
from nph.data.ingest import ERRORS_CSV, IngestOptions, LabelScheme, ingest
from nph.data.ingest_filters import Filters
from nph.data.ingest_layouts import DEFAULT_CASE_SUFFIX, case_id_from, ldm100k_cases, paired_cases
from nph.errors import InputError

GRID = Grid(shape=(24, 28, 24), spacing=(1.667, 1.75, 1.667))
VOXEL_ML = 1.667 * 1.75 * 1.667 / 1000


def _options(**kwargs) -> IngestOptions:
    return IngestOptions(grid=GRID, **kwargs)


@pytest.fixture
def mixed(tmp_path):
    """Four cases: RAS .nii.gz, LAS .nii.gz, LPI .mgz, and a FreeSurfer-aseg label map."""
    scans, segs = tmp_path / "scans", tmp_path / "segs"
    write_pair(scans / "sub-01_FLAIR.nii.gz", segs / "sub-01_FLAIR_synthseg.nii.gz", seed=1)
    write_pair(scans / "sub-02_FLAIR.nii.gz", segs / "sub-02_FLAIR_synthseg.nii.gz", seed=2, flips=(0,))
    write_pair(scans / "sub-03_FLAIR.mgz", segs / "sub-03_FLAIR_synthseg.mgz", seed=3, flips=(1, 2))
    write_pair(scans / "sub-04_FLAIR.nii.gz", segs / "sub-04_aseg.nii.gz", seed=4, labels=aseg_version(head_labels()))
    return paired_cases(str(scans / "*"), str(segs / "*"))


def test_case_ids_strip_volume_suffix_and_tags_and_are_file_safe(tmp_path) -> None:
    pattern = re.compile(DEFAULT_CASE_SUFFIX)
    assert case_id_from(tmp_path / "sub-01_FLAIR_synthseg.nii.gz", pattern) == "sub-01"
    assert case_id_from(tmp_path / "sub-01_T1w.mgz", pattern) == "sub-01"
    assert case_id_from(tmp_path / "pat 7+(b)_seg.nii", pattern) == "pat_7_b"
    assert case_id_from(tmp_path / "x_scan.nii.gz", re.compile("_scan$")) == "x"


def test_paired_globs_match_by_id_and_name_what_does_not(tmp_path) -> None:
    for name in ("b_T1w", "a_T1w", "c_T1w"):
        write_volume(tmp_path / "img" / f"{name}.nii.gz", np.zeros((2, 2, 2), np.float32))
    for name in ("a_seg", "b_seg", "d_seg"):
        write_volume(tmp_path / "lab" / f"{name}.nii.gz", np.zeros((2, 2, 2), np.int16))
    with pytest.raises(InputError, match=r"images without a label: .*c_T1w\.nii\.gz; labels without an image: .*d_seg"):
        paired_cases(str(tmp_path / "img/*"), str(tmp_path / "lab/*"))
    (tmp_path / "lab" / "d_seg.nii.gz").unlink()
    with pytest.raises(InputError, match=r"3 images and 2 labels"):
        paired_cases(str(tmp_path / "img/*"), str(tmp_path / "lab/*"))
    (tmp_path / "img" / "c_T1w.nii.gz").unlink()
    cases = paired_cases(str(tmp_path / "img/*"), str(tmp_path / "lab/*"))
    assert [(c.case_id, c.image.name, c.label.name) for c in cases] == [
        ("a", "a_T1w.nii.gz", "a_seg.nii.gz"), ("b", "b_T1w.nii.gz", "b_seg.nii.gz")]
    write_volume(tmp_path / "img" / "a_FLAIR.nii.gz", np.zeros((2, 2, 2), np.float32))
    with pytest.raises(InputError, match=r"both give case id 'a'"):
        paired_cases(str(tmp_path / "img/*"), str(tmp_path / "lab/*"))
    with pytest.raises(InputError, match=r"images=.*nothing\*: no files match"):
        paired_cases(str(tmp_path / "nothing*"), str(tmp_path / "lab/*"))
    with pytest.raises(InputError, match=r"case_suffix: '\(' is not a valid regular expression"):
        paired_cases(str(tmp_path / "img/*"), str(tmp_path / "lab/*"), case_suffix="(")


def test_mixed_orientations_formats_and_aseg_ids_become_one_valid_dataset(tmp_path, mixed) -> None:
    out = tmp_path / "out"
    report = ingest(mixed, out, _options())
    assert report.written == ["sub-01", "sub-02", "sub-03", "sub-04"] and not report.failures
    dataset = LabelledDataset(out)
    manifest = dataset.manifest.set_index("case_id")
    assert list(manifest["label_scheme"]) == ["synthseg", "synthseg", "synthseg", "aseg"]
    assert json.loads(manifest.loc["sub-03", "original_shape"]) == [40, 48, 40]
    assert manifest.loc["sub-02", "source_label"].endswith("segs/sub-02_FLAIR_synthseg.nii.gz")
    reference = dataset.label("sub-01").data
    ventricle_ml = float(np.isin(head_labels(), (4, 5, 14, 15, 43, 44)).sum()) / 1000  # 1 mm voxels
    icv_ml = float((head_labels() != 0).sum()) / 1000
    for case_id in dataset.case_ids:
        label, image = dataset.label(case_id), dataset.image(case_id)
        assert label.shape == image.shape == GRID.shape and np.allclose(label.affine[:3, :3], np.diag(GRID.spacing))
        assert image.data.min() == 0.0 and image.data.max() == 1.0
        assert np.all(image.data[~ndimage.binary_dilation(label.data != 0)] == 0)  # air stays 0, not masked
        assert np.argwhere(label.data == 12)[:, 0].mean() < GRID.shape[0] / 2  # the left marker stays left
        assert manifest.loc[case_id, "icv_ml"] == pytest.approx(icv_ml, rel=0.02)
        assert manifest.loc[case_id, "ventricle_ml"] == pytest.approx(ventricle_ml, rel=0.15)  # thin: NN aliasing
        if case_id != "sub-04":  # same head in another orientation/format: the very same label map
            assert np.array_equal(label.data, reference)
    aseg_case = dataset.label("sub-04").data  # choroid plexus counted with the ventricles; CC became WM
    assert not np.isin(aseg_case, (31, 63, 251)).any()
    assert np.isin(reference, (4, 43)).sum() == np.isin(aseg_case, (4, 43)).sum()
    assert (aseg_case != reference).mean() < 0.01


def test_bad_cases_are_skipped_with_file_and_problem_and_the_rest_written(tmp_path, mixed) -> None:
    scans, segs = mixed[0].image.parent, mixed[0].label.parent
    (scans / "sub-05_FLAIR.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    write_volume(segs / "sub-05_seg.nii.gz", head_labels())
    unknown = head_labels()
    unknown[20, 20, 20] = 999
    write_pair(scans / "sub-06_FLAIR.nii.gz", segs / "sub-06_seg.nii.gz", labels=unknown)
    write_volume(scans / "sub-07_FLAIR.nii.gz", np.ones((40, 48, 39), np.float32))
    write_volume(segs / "sub-07_seg.nii.gz", head_labels())
    nan_image = np.ones((40, 48, 40), np.float32)
    nan_image[1, 2, 3] = np.nan
    write_volume(scans / "sub-08_FLAIR.nii.gz", nan_image)
    write_volume(segs / "sub-08_seg.nii.gz", head_labels())
    cases = paired_cases(str(scans / "*"), str(segs / "*"))
    report = ingest(cases, tmp_path / "out", _options(label_scheme=LabelScheme.SYNTHSEG))
    problems = {f.case: (os.path.basename(f.file), f.problem) for f in report.failures}
    assert problems.keys() == {"sub-04", "sub-05", "sub-06", "sub-07", "sub-08"}  # sub-04: aseg ids under synthseg
    assert problems["sub-05"][0] == "sub-05_FLAIR.nii.gz" and problems["sub-05"][1].startswith("cannot read")
    assert problems["sub-06"][0] == "sub-06_seg.nii.gz" and problems["sub-06"][1].startswith("label ids [999]")
    assert problems["sub-07"] == ("sub-07_FLAIR.nii.gz", "intensities are constant over the head (1); cannot scale")
    assert problems["sub-08"][0] == "sub-08_FLAIR.nii.gz" and "NaN" in problems["sub-08"][1]
    assert all("\n" not in p for _, p in problems.values())
    assert LabelledDataset(tmp_path / "out").case_ids == ["sub-01", "sub-02", "sub-03"]
    errors = (tmp_path / "out" / ERRORS_CSV).read_text().splitlines()
    assert errors[0] == "case,file,problem" and len(errors) == 6
    assert not (tmp_path / "out" / "imagesTr" / "sub-06_0000.nii.gz").exists()


def test_a_dataset_made_by_another_command_is_not_overwritten(tmp_path, mixed) -> None:
    other = DatasetPaths(tmp_path / "other")
    finalize(other, [write_case(other, "ph", head_labels(), np.eye(4), provenance={"source": "phantom"})])
    before = other.manifest.read_bytes()
    with pytest.raises(InputError, match=r"holds a dataset not made by nph ingest"):
        ingest(mixed, other.root, _options())
    assert other.manifest.read_bytes() == before and not (other.root / "imagesTr").exists()


def test_no_usable_case_writes_nothing(tmp_path) -> None:
    unknown = head_labels()
    unknown[0, 0, 0] = 999
    write_pair(tmp_path / "a_T1w.nii.gz", tmp_path / "a_seg.nii.gz", labels=unknown)
    cases = paired_cases(str(tmp_path / "*_T1w.nii.gz"), str(tmp_path / "*_seg.nii.gz"))
    with pytest.raises(InputError, match=r"a_seg\.nii\.gz: label ids \[999\] .*; nothing written to out=.*out$"):
        ingest(cases, tmp_path / "out", _options())
    assert not (tmp_path / "out").exists()


def test_filters_use_the_sidecar_then_the_header(tmp_path) -> None:
    thick = np.diag([1.0, 1.0, 3.0, 1.0])
    write_pair(tmp_path / "s" / "thin_T1w.nii.gz", tmp_path / "l" / "thin_seg.nii.gz")
    write_pair(tmp_path / "s" / "thick_T1w.nii.gz", tmp_path / "l" / "thick_seg.nii.gz", affine=thick)
    write_pair(tmp_path / "s" / "flat_T1w.nii.gz", tmp_path / "l" / "flat_seg.nii.gz")
    write_pair(tmp_path / "s" / "sidecar3d_T1w.nii.gz", tmp_path / "l" / "sidecar3d_seg.nii.gz", affine=thick)
    (tmp_path / "s" / "flat_T1w.json").write_text(json.dumps({"MRAcquisitionType": "2D", "SliceThickness": 1.0}))
    (tmp_path / "s" / "sidecar3d_T1w.json").write_text(json.dumps({"MRAcquisitionType": "3D", "SliceThickness": 1.2}))
    cases = paired_cases(str(tmp_path / "s/*.nii.gz"), str(tmp_path / "l/*"))
    report = ingest(cases, tmp_path / "out", _options(filters=Filters(require_3d=True, max_slice_thickness_mm=2.0)))
    assert report.written == ["sidecar3d", "thin"]
    assert report.filtered["flat"] == "MRAcquisitionType is '2D', not '3D'"
    assert report.filtered["thick"].startswith("no MRAcquisitionType in a sidecar and voxels of 1×1×3 mm look 2D")
    only_thickness = ingest(cases, tmp_path / "out2", _options(filters=Filters(max_slice_thickness_mm=2.0)))
    assert only_thickness.filtered == {"thick": "slice thickness 3 mm (header spacing) > max_slice_thickness_mm=2.0"}
    (tmp_path / "s" / "flat_T1w.json").write_text("{not json")
    broken = ingest(cases, tmp_path / "out3", _options(filters=Filters(require_3d=True)))
    assert [(f.file, f.problem[:26]) for f in broken.failures] == [(str(tmp_path / "s" / "flat_T1w.json"),
                                                                   "sidecar is not valid JSON ")]


def test_resume_skips_finished_cases_and_redoes_changed_ones(tmp_path, mixed) -> None:
    out = tmp_path / "out"
    first = ingest(mixed, out, _options())
    images = sorted((out / "imagesTr").iterdir())
    mtimes = {p.name: p.stat().st_mtime_ns for p in images}
    again = ingest(mixed, out, _options())
    assert again.resumed == ["sub-01", "sub-02", "sub-03", "sub-04"] and again.written == []
    assert {p.name: p.stat().st_mtime_ns for p in images} == mtimes
    assert again.manifest.drop(columns="evans_index").equals(first.manifest.drop(columns="evans_index"))
    assert np.allclose(again.manifest["evans_index"], first.manifest["evans_index"], equal_nan=True)
    write_pair(mixed[1].image, mixed[1].label, seed=99, flips=(0,))  # new content for sub-02
    (out / "labelsTr" / "sub-03.nii.gz").unlink()  # interrupted before sub-03's label was written
    third = ingest(mixed, out, _options())
    assert third.written == ["sub-02", "sub-03"] and third.resumed == ["sub-01", "sub-04"]
    assert (out / "imagesTr" / "sub-01_0000.nii.gz").stat().st_mtime_ns == mtimes["sub-01_0000.nii.gz"]
    other_grid = ingest(mixed, out, IngestOptions(grid=Grid((20, 24, 20), (2.0, 2.0, 2.0))))
    assert other_grid.resumed == [] and LabelledDataset(out).label("sub-01").shape == (20, 24, 20)


def test_process_pool_gives_the_same_dataset(tmp_path, mixed) -> None:
    serial = ingest(mixed[:2], tmp_path / "one", _options())
    pooled = ingest(mixed[:2], tmp_path / "two", _options(workers=2))
    assert pooled.written == serial.written
    for case_id in serial.written:
        a, b = LabelledDataset(tmp_path / "one"), LabelledDataset(tmp_path / "two")
        assert np.array_equal(a.image(case_id).data, b.image(case_id).data)
        assert np.array_equal(a.label(case_id).data, b.label(case_id).data)


def test_ldm100k_layout_and_bad_options(tmp_path) -> None:
    for sub in ("sub-1", "sub-2"):
        write_pair(tmp_path / "rawdata" / sub / "anat" / f"{sub}_T1w.nii.gz",
                   tmp_path / "masks" / sub / "anat" / f"{sub}_T1w.nii.gz")
    write_volume(tmp_path / "rawdata" / "sub-3" / "anat" / "sub-3_T1w.nii.gz", np.ones((4, 4, 4), np.float32))
    cases = ldm100k_cases(tmp_path)
    assert [c.case_id for c in cases] == ["sub-1", "sub-2", "sub-3"]
    report = ingest(cases, tmp_path / "out", _options())
    assert report.written == ["sub-1", "sub-2"]
    assert [(f.case, f.problem) for f in report.failures] == [("sub-3", "no such file")]
    assert report.failures[0].file == str(tmp_path / "masks" / "sub-3" / "anat" / "sub-3_T1w.nii.gz")
    with pytest.raises(InputError, match=r"rawdata: no such folder"):
        ldm100k_cases(tmp_path / "masks")
    with pytest.raises(InputError, match=r"percentiles: expected 0 <= low < high <= 100"):
        _options(percentiles=(99.5, 0.5))
    with pytest.raises(InputError, match=r"filters.max_slice_thickness_mm"):
        Filters(max_slice_thickness_mm=-1)


def test_remaining_bad_inputs_are_named(tmp_path, mixed) -> None:
    with pytest.raises(InputError, match=r"cannot derive a case id from '___'"):
        case_id_from(tmp_path / "___.nii.gz", re.compile(DEFAULT_CASE_SUFFIX))
    (tmp_path / "rawdata" / "sub-x" / "anat").mkdir(parents=True)
    with pytest.raises(InputError, match=r"rawdata: no <sub>/anat/<sub>_T1w.nii.gz images found"):
        ldm100k_cases(tmp_path)
    for suffix in (".nii", ".nii.gz"):
        write_volume(tmp_path / "rawdata" / "sub-x" / "anat" / f"sub-x_T1w{suffix}", np.ones((2, 2, 2), np.float32))
    with pytest.raises(InputError, match=r"sub-x_T1w.nii.gz: case id 'sub-x' already taken by .*sub-x_T1w.nii$"):
        ldm100k_cases(tmp_path)
    sidecar = mixed[0].image.with_name("sub-01_FLAIR.json")
    for text, problem in (("[3]", "sidecar is not a JSON object"), ('{"SliceThickness": "thin"}',
                                                                     "SliceThickness 'thin' is not a number")):
        sidecar.write_text(text)
        report = ingest(mixed[:2], tmp_path / "out", _options(filters=Filters(max_slice_thickness_mm=2.0)))
        assert [(f.file, f.problem) for f in report.failures] == [(str(sidecar), problem)]
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match=r"out=.*file: exists and is not a folder"):
        ingest(mixed, tmp_path / "file", _options())
    with pytest.raises(InputError, match=r"no cases to ingest"):
        ingest([], tmp_path / "out", _options())
    with pytest.raises(InputError, match=r"workers: expected at least 1, got 0"):
        _options(workers=0)
