"""Ventricle-only references (ingest's ``label_scheme=ventricles`` datasets, binary expert masks) are scored:
whole-system metrics, per-structure rows only where both sides name the structure, and an Evans index whose
skull comes from the test image."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from nph.data.dataset import image_cases
from nph.data.labels import VENTRICLE_IDS
from nph.errors import InputError
from nph.evaluation.benchmark import BenchmarkPaths, run_benchmark
from nph.evaluation.casewise import score_cases
from nph.evaluation.schemes import WHOLE, open_label_folder, write_prediction_folder_labels
from nph.io.nifti import load_volume, save_volume

BINARY = {"background": 0, "ventricles": 1}
SCALP_VOXELS = 3  # 3 × 3.333 mm = 10 mm of scalp on each side of the phantoms' heads
SCALP_MM = SCALP_VOXELS * 3.333
#: An expert's lateral/3rd/4th split: the lateral ventricles hold their temporal (inferior) horns.
SPLIT = {"background": 0, "left lateral ventricle": 1, "right lateral ventricle": 2, "3rd ventricle": 3,
         "4th ventricle": 4}  # fmt: skip
IDS_OF = {"ventricles": VENTRICLE_IDS, "left lateral ventricle": (4, 5), "right lateral ventricle": (43, 44),
          "3rd ventricle": (14,), "4th ventricle": (15,)}  # fmt: skip


def ventricle_dataset(bench, root, labels):
    """The phantom reference as nph ingest writes a ``label_scheme=ventricles`` dataset: its images, maps that
    keep only the ventricles (0/1, or ``labels``: SynthSeg names of a split), a manifest without ICV."""
    for case in bench.ref_ids:  # real heads have scalp: a bright shell of SCALP_VOXELS along x
        image = load_volume(bench.reference / "imagesTr" / f"{case}_0000.nii.gz")
        data = image.data.copy()
        line = np.zeros((2 * SCALP_VOXELS + 1, 1, 1), bool)
        line[:] = True
        data[ndimage.binary_dilation(bench.ref_ids[case] != 0, line) & (bench.ref_ids[case] == 0)] = 0.9
        save_volume(root / "imagesTr" / f"{case}_0000.nii.gz", data, image.affine)
    for case, ids in bench.ref_ids.items():
        mask = np.zeros(ids.shape, np.uint8)
        for name, value in labels.items():
            if value:
                mask[np.isin(ids, IDS_OF[name])] = value
        save_volume(root / "labelsTr" / f"{case}.nii.gz", mask, bench.affine, dtype=np.uint8)
    manifest = pd.read_csv(bench.reference / "manifest.csv", dtype={"case_id": str})
    manifest[["icv_ml", "ventricle_fraction", "evans_index"]] = np.nan
    manifest.to_csv(root / "manifest.csv", index=False)
    dataset = {"channel_names": {"0": "FLAIR"}, "labels": labels, "numTraining": len(manifest),
               "file_ending": ".nii.gz", "nph": {"label_scheme": "ventricles", "has_images": True}}  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(dataset))
    return root


def _run(reference, predictions, out, **kwargs):
    run_benchmark(reference, predictions, out, n_boot=50, seed=0, command=["nph", "evaluate"], **kwargs)
    return pd.read_csv(BenchmarkPaths(out).per_case, keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def binary_reference(benchmark_inputs, tmp_path_factory):
    root = ventricle_dataset(benchmark_inputs, tmp_path_factory.mktemp("vent") / "reference", BINARY)
    predictions = {m: benchmark_inputs.predictions[m] for m in ("nnunet", "binary")}  # on the reference grid: fast
    per_case = _run(root, predictions, tmp_path_factory.mktemp("vent_out"), scalp_mm=SCALP_MM, baseline="binary")
    return root, per_case


def test_binary_reference_scores_the_whole_system(benchmark_inputs, binary_reference) -> None:
    _, per_case = binary_reference
    assert set(per_case.structure) == {WHOLE} and len(per_case) == 6 * 2  # the reference names no single ventricle
    for (case, method), row in per_case.set_index(["case_id", "method"]).iterrows():
        ref = np.isin(benchmark_inputs.ref_ids[case], VENTRICLE_IDS)
        maps = benchmark_inputs.pred_ids[method]
        pred = np.zeros_like(ref) if case not in maps else (maps[case] == 1 if method == "binary" else
                                                             np.isin(maps[case], VENTRICLE_IDS))  # fmt: skip
        assert row.dice == pytest.approx(2 * (ref & pred).sum() / (ref.sum() + pred.sum()))
        assert row.reference_ml == pytest.approx(ref.sum() * 3.333 * 3.5 * 3.333 / 1000)
        assert np.isfinite(row.hd95_mm) and np.isfinite(row.assd_mm)


def test_evans_index_of_a_ventricle_only_reference_comes_from_the_image(benchmark_inputs, binary_reference) -> None:
    """The phantom image, with 10 mm of scalp added, gives the labels' Evans index (the full reference's
    manifest): the same frontal horns, found in the upper part of the binary mask, over a skull within a voxel
    (among slices whose horns are equally wide, the labels and the binary mask may pick different ones)."""
    _, per_case = binary_reference
    manifest = pd.read_csv(benchmark_inputs.reference / "manifest.csv", dtype={"case_id": str}).set_index("case_id")
    for case, rows in per_case.groupby("case_id"):
        assert rows.evans_reference.nunique() == 1 and rows.flag.str.contains("skull_from_image").all()
        assert rows.evans_reference.iloc[0] == pytest.approx(manifest.loc[case, "evans_index"], rel=1.1 / 37)
        exact = rows[rows.dice == 1]
        assert (exact.evans_predicted == exact.evans_reference).all()


def test_split_reference_has_rows_only_for_structures_both_sides_name(benchmark_inputs, tmp_path) -> None:
    root = ventricle_dataset(benchmark_inputs, tmp_path / "reference", SPLIT)
    folders = {m: open_label_folder(benchmark_inputs.predictions[m], name=m) for m in ("nnunet", "binary")}
    per_case = score_cases(open_label_folder(root), folders, images=image_cases(root), scalp_mm=SCALP_MM)
    by_method = per_case.groupby("method").structure.unique()
    assert set(by_method["nnunet"]) == {WHOLE, *list(SPLIT)[1:]}
    assert set(by_method["binary"]) == {WHOLE}
    case = sorted(benchmark_inputs.ref_ids)[0]  # nnunet is exact there
    rows = per_case[(per_case.case_id == case) & (per_case.method == "nnunet")].set_index("structure")
    assert rows.loc[[WHOLE, "3rd ventricle", "4th ventricle"], "dice"].tolist() == [1.0, 1.0, 1.0]
    ids = benchmark_inputs.ref_ids[case]  # each side's own left lateral ventricle: the expert's has the temporal horn
    ref, pred = np.isin(ids, (4, 5)), ids == 4
    assert rows.loc["left lateral ventricle", "dice"] == pytest.approx(2 * pred.sum() / (ref.sum() + pred.sum()))
    assert rows.loc[WHOLE, "evans_reference"] == rows.loc[WHOLE, "evans_predicted"]  # lateral ventricles named


def test_binary_reference_without_images(benchmark_inputs, binary_reference, tmp_path, caplog) -> None:
    """A prediction-style folder of expert masks has no image: Evans NaN and flagged, the rest scored; images=DIR
    names where the images are, and a folder lacking a case is refused."""
    root, _ = binary_reference
    masks = tmp_path / "masks"
    shutil.copytree(root / "labelsTr", masks)
    write_prediction_folder_labels(masks, "binary")
    predictions = {"nnunet": benchmark_inputs.predictions["nnunet"]}
    with caplog.at_level(logging.WARNING, logger="nph.evaluation.benchmark"):
        per_case = _run(masks, predictions, tmp_path / "a", baseline=None)
    assert "set images=DIR" in caplog.text
    assert per_case.evans_reference.isna().all() and per_case.flag.str.contains("no_skull").all()
    assert per_case.dice.notna().all()
    with_images = _run(masks, predictions, tmp_path / "b", baseline=None, images=root, scalp_mm=SCALP_MM)
    assert with_images.flag.str.contains("skull_from_image").all() and with_images.evans_reference.notna().all()
    partial = tmp_path / "partial"
    shutil.copytree(root / "imagesTr", partial)
    (partial / "case_2_0000.nii.gz").unlink()
    with pytest.raises(InputError, match=r"images: .*partial has no image for reference case\(s\) \['case_2'\]"):
        _run(masks, predictions, tmp_path / "c", baseline=None, images=partial)
    assert not (tmp_path / "c").exists()
