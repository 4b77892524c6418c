"""nnU-Net driving without running it: folders from one root, environment, thread split, command lines, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nph.errors import InputError
from nph.segmentation.nnunet_env import TRAINER_DIR, NnunetRoot, dataset_folder_name, nnunet_env, split_cpus
from nph.segmentation.nnunet_run import (
    install_splits,
    model_folder,
    narrow_network,
    plan_command,
    plans_name,
    predict_command,
    require_trained,
    train_command,
)


def test_env_is_explicit_and_complete(tmp_path: Path) -> None:
    root = NnunetRoot(tmp_path)
    env = nnunet_env(root, {"PATH": "/bin", "nnUNet_raw": "/elsewhere"}, threads=3, workers=5,
                     extra={"NPH_NNUNET_EPOCHS": "2"})
    assert env["nnUNet_raw"] == str(tmp_path / "nnUNet_raw") and env["PATH"] == "/bin"
    assert env["nnUNet_preprocessed"] == str(tmp_path / "nnUNet_preprocessed")
    assert env["nnUNet_results"] == str(tmp_path / "nnUNet_results")
    assert env["nnUNet_extTrainer"] == str(TRAINER_DIR) and (TRAINER_DIR / "nnUNetTrainer_nph.py").is_file()
    assert (env["OMP_NUM_THREADS"], env["nnUNet_n_proc_DA"], env["nnUNet_def_n_proc"]) == ("3", "5", "5")
    assert env["NPH_NNUNET_THREADS"] == "3"  # nph's trainers re-apply it after nnU-Net's CPU entry took every core
    assert env["nnUNet_compile"] == "false" and env["NPH_NNUNET_EPOCHS"] == "2"


@pytest.mark.parametrize(("cpus", "device", "expected"), [
    (1, "cpu", (1, 0)), (2, "cpu", (2, 0)), (16, "cpu", (12, 4)), (2, "cuda", (2, 0)), (16, "cuda", (2, 14)),
])
def test_split_cpus_never_oversubscribes(cpus: int, device: str, expected: tuple[int, int]) -> None:
    threads, workers = split_cpus(cpus, device)
    assert (threads, workers) == expected and threads + workers <= max(cpus, 1)


def test_command_lines() -> None:
    plan = plan_command(12, "3d_fullres", "nnUNetPlannerResEncM", 2)
    assert plan[0] == sys.executable and "plan_and_preprocess_entry" in plan[2]
    assert plan[3:] == ["-d", "12", "-c", "3d_fullres", "-pl", "nnUNetPlannerResEncM", "-np", "2", "-npfp", "2",
                        "--verify_dataset_integrity", "--no_pbar"]
    train = train_command(12, "3d_fullres", "0", "nnUNetTrainer_nph_tiny", "nnUNetPlans", "cpu", resume=True)
    assert "run_training_entry" in train[2]
    assert train[3:] == ["12", "3d_fullres", "0", "-tr", "nnUNetTrainer_nph_tiny", "-p", "nnUNetPlans",
                         "-device", "cpu", "--c"]
    predict = predict_command(Path("/i"), Path("/o"), Path("/m"), "all", "cuda", 2, 4)
    assert predict[1:3] == ["-m", "nph.segmentation.nnunet_predict_main"]
    assert predict[predict.index("--threads") + 1] == "2" and predict[predict.index("--fold") + 1] == "all"
    assert plans_name("nnUNetPlannerResEncL") == "nnUNetResEncUNetLPlans"
    with pytest.raises(InputError, match="planner='Fancy'"):
        plans_name("Fancy")


def test_folders_and_errors(tmp_path: Path) -> None:
    root = NnunetRoot(tmp_path)
    assert dataset_folder_name(7, "Aug_1") == "Dataset007_Aug_1"
    with pytest.raises(InputError, match=r"1\.\.999"):
        dataset_folder_name(1000, "X")
    with pytest.raises(InputError, match="letters, digits"):
        dataset_folder_name(1, "a-b")
    with pytest.raises(InputError, match=r"no Dataset005_\* folder.*nph nnunet export"):
        root.find_dataset(5)
    (root.raw / "Dataset005_A").mkdir(parents=True)
    (root.raw / "Dataset005_A" / "export.json").write_text(json.dumps({"splits": [{"train": ["a"], "val": ["b"]}]}))
    assert root.find_dataset(5) == "Dataset005_A"
    splits = install_splits(root, "Dataset005_A")
    assert json.loads(splits.read_text()) == [{"train": ["a"], "val": ["b"]}]
    model = model_folder(root, "Dataset005_A", "T", "P", "3d_fullres")
    assert model == tmp_path / "nnUNet_results" / "Dataset005_A" / "T__P__3d_fullres"
    with pytest.raises(InputError, match=r"T__P__3d_fullres: no trained nnU-Net model.*nph nnunet train"):
        require_trained(model, "0", 5, tmp_path)
    (model / "fold_0").mkdir(parents=True)
    with pytest.raises(InputError, match=r"fold_0/checkpoint_final\.pth"):
        require_trained(model, "0", 5, tmp_path)
    (root.raw / "Dataset005_B").mkdir()
    with pytest.raises(InputError, match="several folders"):
        root.find_dataset(5)


def test_narrow_network_halves_nothing_it_should_not(tmp_path: Path) -> None:
    """base_features·2^i per stage, capped by nnU-Net's plan; other configurations and keys untouched."""
    planned = [32, 64, 128, 256, 320, 320]
    plans = {
        "plans_name": "nnUNetPlans",
        "configurations": {
            "3d_fullres": {"batch_size": 2, "architecture": {"arch_kwargs": {"features_per_stage": planned,
                                                                              "n_stages": 6}}},
            "2d": {"architecture": {"arch_kwargs": {"features_per_stage": planned}}},
        },
    }
    path = tmp_path / "nnUNetPlans.json"
    path.write_text(json.dumps(plans))
    assert narrow_network(path, "3d_fullres", 8) == [8, 16, 32, 64, 128, 256]
    written = json.loads(path.read_text())
    assert written["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"] == {
        "features_per_stage": [8, 16, 32, 64, 128, 256], "n_stages": 6}
    assert written["configurations"]["2d"] == plans["configurations"]["2d"]
    assert written["configurations"]["3d_fullres"]["batch_size"] == 2 and written["plans_name"] == "nnUNetPlans"
    assert narrow_network(path, "2d", 64) == [32, 64, 128, 256, 320, 320]  # never wider than planned
    with pytest.raises(InputError, match="base_features=0"):
        narrow_network(path, "2d", 0)
    with pytest.raises(InputError, match=r"nnUNetPlans\.json: no features_per_stage for configuration '3d_lowres'"):
        narrow_network(path, "3d_lowres", 8)
    assert json.loads(path.read_text())["configurations"]["2d"]["architecture"]["arch_kwargs"][
        "features_per_stage"] == [32, 64, 128, 256, 320, 320]
