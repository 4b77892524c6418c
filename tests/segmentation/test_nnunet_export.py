"""Export of labelled dataset folders to an nnU-Net raw dataset: mixing, label schemes, splits, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nph.data.dataset import LabelledDataset
from nph.data.labels import VENTRICLE_IDS
from nph.errors import InputError
from nph.io.nifti import load_volume
from nph.segmentation.nnunet_env import NnunetRoot, nnunet_env
from nph.segmentation.nnunet_export import Source, export_nnunet, parse_count, select_cases
from nph.segmentation.schemes import Scheme, from_contiguous33, scheme_labels, to_synthseg_ids


def test_mixing_counts_prefixes_and_seeded_selection(toy_real: Path, toy_synth: Path, tmp_path: Path) -> None:
    root = NnunetRoot(tmp_path / "nn")
    result = export_nnunet([Source(toy_real), Source(toy_synth, 5)], root, 7, "Aug", scheme=Scheme.ALL33,
                           seed=3, val_cases=2, val_source=0)
    assert result.folder == root.raw / "Dataset007_Aug"
    assert len(result.cases["real"]) == 6 and len(result.cases["synth"]) == 5
    images = sorted(p.name for p in (result.folder / "imagesTr").iterdir())
    assert len(images) == 11 and all(n.startswith(("real_case", "synth_case")) for n in images)
    info = json.loads((result.folder / "dataset.json").read_text())
    assert info["numTraining"] == 11 and info["labels"] == scheme_labels(Scheme.ALL33)
    record = json.loads((result.folder / "export.json").read_text())
    assert [s["selected"] for s in record["sources"]] == [6, 5] and record["sources"][1]["available"] == 8
    split = record["splits"][0]
    assert len(split["val"]) == 2 and all(v.startswith("real_") for v in split["val"])
    assert set(split["train"]) | set(split["val"]) == {n.removesuffix("_0000.nii.gz") for n in images}
    assert not set(split["train"]) & set(split["val"])
    # the same seed picks the same synthetic cases; another seed picks others
    again = export_nnunet([Source(toy_real), Source(toy_synth, 5)], root, 7, "Aug", scheme=Scheme.ALL33,
                          seed=3, val_cases=2)
    assert again.cases == result.cases
    picks = {tuple(select_cases([f"c{i}" for i in range(20)], 5, s, 1, tmp_path)) for s in range(6)}
    assert len(picks) > 1
    # all33 labels are the dataset's own contiguous labels (hard-linked, not rewritten)
    case = result.cases["synth"][0]
    original = LabelledDataset(toy_synth).label_contiguous(case.removeprefix("synth_")).data
    assert np.array_equal(load_volume(result.folder / "labelsTr" / f"{case}.nii.gz", integer=True).data, original)


@pytest.mark.parametrize(("scheme", "classes"), [(Scheme.VENTRICLES6, 7), (Scheme.VENTRICLES1, 2)])
def test_label_remapping(scheme: Scheme, classes: int, toy_real: Path, tmp_path: Path) -> None:
    root = NnunetRoot(tmp_path / "nn")
    result = export_nnunet([Source(toy_real, 3)], root, 8, "Vent", scheme=scheme, seed=0, val_cases=1)
    info = json.loads((result.folder / "dataset.json").read_text())
    assert len(info["labels"]) == classes
    ds = LabelledDataset(toy_real)
    for case in result.cases["real"]:
        ids = ds.label(case.removeprefix("real_")).data
        exported = load_volume(result.folder / "labelsTr" / f"{case}.nii.gz", integer=True).data
        assert np.array_equal(exported > 0, np.isin(ids, VENTRICLE_IDS))
        if scheme is Scheme.VENTRICLES6:
            assert np.array_equal(exported[ids == 43], np.full((ids == 43).sum(), 5))  # right lateral: 5th
            assert np.array_equal(to_synthseg_ids(exported, scheme)[exported > 0], ids[exported > 0])


def test_scheme_remap_table() -> None:
    contiguous = np.arange(33)
    assert from_contiguous33(contiguous, Scheme.VENTRICLES1).sum() == 6
    assert sorted(from_contiguous33(contiguous, Scheme.VENTRICLES6)[from_contiguous33(contiguous, Scheme.VENTRICLES6)
                                                                     > 0]) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(InputError):
        from_contiguous33(np.array([33]), Scheme.ALL33)


def test_bad_inputs(toy_real: Path, toy_synth: Path, tmp_path: Path) -> None:
    root = NnunetRoot(tmp_path / "nn")
    with pytest.raises(InputError, match="only 6"):
        export_nnunet([Source(toy_real, 9)], root, 9, "X", scheme=Scheme.ALL33, seed=0, val_cases=1)
    with pytest.raises(InputError, match="val_cases=6"):
        export_nnunet([Source(toy_real)], root, 9, "X", scheme=Scheme.ALL33, seed=0, val_cases=6)
    bad = tmp_path / "bad"
    shutil.copytree(toy_synth, bad)
    info = json.loads((bad / "dataset.json").read_text())
    info["labels"]["left caudate"], info["labels"]["left putamen"] = 9, 8
    (bad / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match=r"dataset\.json"):
        export_nnunet([Source(toy_real), Source(bad)], root, 9, "X", scheme=Scheme.ALL33, seed=0, val_cases=1)
    assert not (root.raw / "Dataset009_X").exists()
    with pytest.raises(InputError, match="no dataset folders"):
        export_nnunet([], root, 9, "X", scheme=Scheme.ALL33, seed=0, val_cases=1)
    assert parse_count("all", "counts") is None and parse_count(3, "counts") == 3
    for value in (0, "x", 2.5):
        with pytest.raises(InputError, match="counts"):
            parse_count(value, "counts")


@pytest.mark.slow
def test_nnunet_integrity_check(toy_real: Path, toy_synth: Path, tmp_path: Path) -> None:
    """nnU-Net's own verify_dataset_integrity accepts a mixed, remapped export, and rejects a damaged one."""
    root = NnunetRoot(tmp_path / "nn")
    result = export_nnunet([Source(toy_real, 2), Source(toy_synth, 2)], root, 5, "Check", scheme=Scheme.VENTRICLES6,
                           seed=1, val_cases=1)
    code = ("import sys; from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity;"
            " verify_dataset_integrity(sys.argv[1], num_processes=1); print('INTEGRITY OK')")
    env = nnunet_env(root, dict(os.environ), threads=1, workers=0)

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, str(result.folder)], env=env, capture_output=True,
                              text=True, check=False)

    proc = check()
    assert proc.returncode == 0 and "INTEGRITY OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    next((result.folder / "labelsTr").iterdir()).unlink()
    assert check().returncode != 0


def test_dataset_without_ventricles_is_refused_before_nnunet_sees_it(tmp_path: Path) -> None:
    from nph.data.dataset import DatasetPaths, finalize, write_case

    paths = DatasetPaths(tmp_path / "no_ventricles")
    ids = np.zeros((8, 8, 8), dtype=np.int16)
    ids[2:6, 2:6, 2:6] = 2  # white matter only: a generator that forgot the ventricles
    rows = [write_case(paths, f"c{i}", ids, np.eye(4), image=np.full(ids.shape, 0.5, np.float32)) for i in range(3)]
    finalize(paths, rows)
    root = NnunetRoot(tmp_path / "nnunet")
    with pytest.raises(InputError, match="no_ventricles: none of the selected cases has any ventricle voxels"):
        export_nnunet([Source(paths.root, None)], root, 7, "x", scheme=Scheme.VENTRICLES1, seed=0, val_cases=1)
    assert not root.raw.exists() or not any(root.raw.iterdir())
    result = export_nnunet([Source(paths.root, None)], root, 7, "x", scheme=Scheme.ALL33, seed=0, val_cases=1)
    assert sum(len(v) for v in result.cases.values()) == 3  # with all33 the tissue is foreground: fine
