"""Driving nnU-Net v2's plan/preprocess, training and prediction as subprocesses with explicit environments.

Commands are built as argument lists (tested without running them) and
run with :func:`nph.segmentation.process.run_logged` (nnU-Net's own progress to the log, a copy under ``root/logs/``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nph.errors import InputError
from nph.io.atomic import write_json
from nph.segmentation.nnunet_env import NnunetRoot

__all__ = [
    "PLANS_OF_PLANNER",
    "install_splits",
    "model_folder",
    "narrow_network",
    "plan_command",
    "plans_name",
    "predict_command",
    "require_trained",
    "resume_training",
    "train_command",
]


#: Planner class → the plans identifier it writes (nnU-Net's residual-encoder presets included).
PLANS_OF_PLANNER = {
    "ExperimentPlanner": "nnUNetPlans",
    "nnUNetPlannerResEncM": "nnUNetResEncUNetMPlans",
    "nnUNetPlannerResEncL": "nnUNetResEncUNetLPlans",
    "nnUNetPlannerResEncXL": "nnUNetResEncUNetXLPlans",
}
_ENTRY = "import sys; from {module} import {func}; sys.argv[0] = {name!r}; sys.exit({func}())"


def plans_name(planner: str) -> str:
    """The plans identifier ``planner`` produces; unknown planners are a config error."""
    if planner not in PLANS_OF_PLANNER:
        raise InputError(f"planner={planner!r}: unknown (known: {', '.join(PLANS_OF_PLANNER)})")
    return PLANS_OF_PLANNER[planner]


def _entry(module: str, func: str, name: str) -> list[str]:
    """Run an nnU-Net console entry point with this interpreter (no reliance on PATH inside containers)."""
    return [sys.executable, "-c", _ENTRY.format(module=module, func=func, name=name)]


def plan_command(dataset_id: int, configuration: str, planner: str, processes: int) -> list[str]:
    """``nnUNetv2_plan_and_preprocess -d ID -c CONF -pl PLANNER --verify_dataset_integrity``."""
    plans_name(planner)
    n = str(max(1, processes))
    return [
        *_entry(
            "nnunetv2.experiment_planning.plan_and_preprocess_entrypoints",
            "plan_and_preprocess_entry",
            "nnUNetv2_plan_and_preprocess",
        ),
        "-d",
        str(dataset_id),
        "-c",
        configuration,
        "-pl",
        planner,
        "-np",
        n,
        "-npfp",
        n,
        "--verify_dataset_integrity",
        "--no_pbar",
    ]


def train_command(
    dataset_id: int, configuration: str, fold: str, trainer: str, plans: str, device: str, resume: bool
) -> list[str]:
    """``nnUNetv2_train ID CONF FOLD -tr TRAINER -p PLANS -device DEV [--c]``."""
    cmd = [
        *_entry("nnunetv2.run.run_training", "run_training_entry", "nnUNetv2_train"),
        str(dataset_id),
        configuration,
        str(fold),
        "-tr",
        trainer,
        "-p",
        plans,
        "-device",
        device,
    ]
    return [*cmd, "--c"] if resume else cmd


#: What nnU-Net's ``--c`` continues from, in its own order (``checkpoint_latest.pth`` is saved every 50 epochs).
RESUME_CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")


def resume_training(fold_dir: Path, resume: bool | str) -> bool:
    """Whether ``nnUNetv2_train`` gets ``--c``. ``auto``: when the fold already holds a checkpoint, so a requeued
    job (timeout, preemption) continues from its last epoch instead of restarting from epoch 0.

    Raises:
        InputError: ``resume`` is not true, false or auto.
    """
    if isinstance(resume, bool):
        return resume
    if str(resume) != "auto":
        raise InputError(f"resume={resume!r}: must be auto (continue when {fold_dir} has a checkpoint), true or false")
    return any((fold_dir / name).is_file() for name in RESUME_CHECKPOINTS)


def predict_command(
    input_dir: Path, output_dir: Path, model: Path, fold: str, device: str, threads: int, processes: int
) -> list[str]:
    """nph's thin predictor entry (nnU-Net's Python API with the allocation's thread count)."""
    return [
        sys.executable,
        "-m",
        "nph.segmentation.nnunet_predict_main",
        "--input",
        str(input_dir),
        "--output",
        str(output_dir),
        "--model",
        str(model),
        "--fold",
        str(fold),
        "--device",
        device,
        "--threads",
        str(threads),
        "--processes",
        str(max(1, processes)),
    ]


def model_folder(root: NnunetRoot, dataset_name: str, trainer: str, plans: str, configuration: str) -> Path:
    """``nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<configuration>``."""
    return root.results / dataset_name / f"{trainer}__{plans}__{configuration}"


def require_trained(model: Path, fold: str, dataset_id: int, root: Path) -> Path:
    """The final checkpoint of ``fold`` in ``model``, or an :class:`InputError` saying how to train it."""
    checkpoint = model / f"fold_{fold}" / "checkpoint_final.pth"
    if not checkpoint.is_file():
        where = model if not model.is_dir() else checkpoint
        raise InputError(
            f"{where}: no trained nnU-Net model (run `nph nnunet train root={root} dataset={dataset_id}` first)"
        )
    return checkpoint


def install_splits(root: NnunetRoot, dataset_name: str) -> Path:
    """Copy the export's validation split into nnUNet_preprocessed as ``splits_final.json`` (fold 0)."""
    record = root.raw / dataset_name / "export.json"
    splits = json.loads(record.read_text())["splits"]
    return write_json(root.preprocessed / dataset_name / "splits_final.json", splits)


def narrow_network(plans_file: Path, configuration: str, base_features: int) -> list[int]:
    """Give the planned U-Net ``base_features`` feature maps in its first stage, doubling per stage, never more
    than nnU-Net planned; returns the new list (written back atomically).

    nnU-Net starts at 32. At toy scale on a CPU a quarter of that costs a quarter of the time per iteration, and
    a budget of iterations is what lets a harder training set (random contrasts) learn at all (docs/demo.md).
    """
    if base_features < 1:
        raise InputError(f"base_features={base_features}: must be at least 1 (null keeps nnU-Net's plan)")
    plans = json.loads(plans_file.read_text())
    try:
        arch = plans["configurations"][configuration]["architecture"]["arch_kwargs"]
        planned = [int(f) for f in arch["features_per_stage"]]
    except (KeyError, TypeError) as err:
        raise InputError(f"{plans_file}: no features_per_stage for configuration {configuration!r}") from err
    arch["features_per_stage"] = [min(base_features * 2**i, f) for i, f in enumerate(planned)]
    write_json(plans_file, plans)
    return arch["features_per_stage"]
