"""The labelled dataset folder: written with measurements, read back, and checked on open."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nph.data.dataset import MANIFEST_COLUMNS, DatasetPaths, LabelledDataset, finalize, write_case
from nph.errors import InputError

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _case(ventricle_width: int) -> np.ndarray:
    ids = np.zeros((12, 12, 12), dtype=np.int16)
    ids[1:11, 1:11, 1:11] = 2
    ids[3 : 3 + ventricle_width, 4:8, 4:8] = 4
    return ids


def _write(root, with_images: bool = True) -> pd.DataFrame:
    paths = DatasetPaths(root)
    rows = []
    for i, width in enumerate([2, 4]):
        ids = _case(width)
        image = (ids > 0).astype(np.float32) * 0.5 if with_images else None
        rows.append(write_case(paths, f"case_{i}", ids, AFFINE, image=image, provenance={"source": "test", "seed": i}))
    return finalize(paths, rows, modality="FLAIR")


def test_round_trip_with_measurements_and_provenance(tmp_path) -> None:
    manifest = _write(tmp_path)
    assert list(manifest.columns) == [*MANIFEST_COLUMNS, "source", "seed"]
    assert manifest["ventricle_ml"].tolist() == pytest.approx([2 * 16 * 0.008, 4 * 16 * 0.008])
    info = json.loads((tmp_path / "dataset.json").read_text())
    assert info["numTraining"] == 2 and info["file_ending"] == ".nii.gz" and info["channel_names"] == {"0": "FLAIR"}
    assert info["labels"]["left lateral ventricle"] == 3 and info["nph"]["label_ids"]["left lateral ventricle"] == 4
    ds = LabelledDataset(tmp_path)
    assert ds.case_ids == ["case_0", "case_1"] and ds.has_images
    assert np.array_equal(ds.label("case_1").data, _case(4))
    assert int(ds.label_contiguous("case_1").data.max()) == 3
    image = ds.image("case_0")
    assert image.data.dtype == np.float32 and np.allclose(image.affine, AFFINE)


def test_masks_only_dataset(tmp_path) -> None:
    _write(tmp_path, with_images=False)
    ds = LabelledDataset(tmp_path)
    assert not ds.has_images and ds.manifest["image"].tolist() == ["", ""]
    assert not any((tmp_path / "imagesTr").glob("*"))


def test_open_refuses_broken_folders(tmp_path) -> None:
    with pytest.raises(InputError, match=r"dataset\.json: missing"):
        LabelledDataset(tmp_path)
    _write(tmp_path)
    info = json.loads((tmp_path / "dataset.json").read_text())
    info["labels"]["background"] = 7
    (tmp_path / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="33-class"):
        LabelledDataset(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        LabelledDataset(tmp_path)


def test_unknown_label_id_names_the_case(tmp_path) -> None:
    ids = _case(2)
    ids[0, 0, 0] = 99
    with pytest.raises(InputError, match=r"case bad.*\[99\]"):
        write_case(DatasetPaths(tmp_path), "bad", ids, AFFINE)
    assert not (tmp_path / "labelsTr" / "bad.nii.gz").exists()


def test_image_cases_of_labelled_image_only_and_plain_folders(tmp_path) -> None:
    from nph.data.dataset import image_cases

    _write(tmp_path / "labelled")
    assert image_cases(tmp_path / "labelled") == {
        "case_0": tmp_path / "labelled" / "imagesTr" / "case_0_0000.nii.gz",
        "case_1": tmp_path / "labelled" / "imagesTr" / "case_1_0000.nii.gz",
    }
    paths = DatasetPaths(tmp_path / "test")
    paths.test_images_dir.mkdir(parents=True)
    (paths.test_image("scan")).write_bytes(b"")
    assert image_cases(paths.root) == {"scan": paths.test_image("scan")}
    (tmp_path / "plain").mkdir()
    for name in ("a.nii", "b_0000.nii.gz", ".hidden.nii", "notes.txt"):
        (tmp_path / "plain" / name).write_bytes(b"")
    assert sorted(image_cases(tmp_path / "plain")) == ["a", "b"]
    (tmp_path / "plain" / "a_0000.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match=r"a_0000\.nii\.gz: case 'a' appears twice \(also a\.nii\)"):
        image_cases(tmp_path / "plain")
    with pytest.raises(InputError, match=r"missing: input folder not found"):
        image_cases(tmp_path / "missing")
    _write(tmp_path / "masks", with_images=False)
    with pytest.raises(InputError, match=r"masks: no \.nii/\.nii\.gz images \(nor an imagesTr/ or imagesTs/ folder\)"):
        image_cases(tmp_path / "masks")
