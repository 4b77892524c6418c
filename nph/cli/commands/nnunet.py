"""nnU-Net v2: export labelled datasets (mixed, remapped), plan, train and predict under one root.

Actions: `nph nnunet export data=[DIR,...] [counts=[all,500]] root=DIR dataset=ID`,
`nph nnunet plan|train root=DIR dataset=ID`, `nph nnunet predict root=DIR dataset=ID input=DIR out=DIR`.
Threads and augmentation workers follow the allocation (SLURM_CPUS_PER_TASK, else all cores).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from nph.cli.options import torch_device
from nph.errors import InputError
from nph.segmentation.nnunet_env import NnunetRoot, nnunet_env, split_cpus
from nph.segmentation.nnunet_export import Source, export_nnunet, parse_count
from nph.segmentation.nnunet_predict import predict_to_folder
from nph.segmentation.nnunet_run import (
    install_splits,
    model_folder,
    narrow_network,
    plan_command,
    plans_name,
    require_trained,
    resume_training,
    train_command,
)
from nph.segmentation.process import run_logged
from nph.segmentation.schemes import parse_scheme

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    """Dispatch on ``cfg.action``."""
    actions = {"export": _export, "plan": _plan, "train": _train, "predict": _predict}
    if cfg.action not in actions:
        raise InputError(f"action={cfg.action!r}: unknown (known: {', '.join(actions)})")
    actions[cfg.action](cfg, NnunetRoot(Path(cfg.root).expanduser().resolve()))


def _cpus(cfg: DictConfig) -> int:
    """The allocation: ``cpus`` if set, else SLURM_CPUS_PER_TASK, else every core of the machine."""
    if cfg.cpus is not None:
        return int(cfg.cpus)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(slurm) if slurm.isdigit() else (os.cpu_count() or 1)


def _env(cfg: DictConfig, root: NnunetRoot, device: str) -> tuple[dict[str, str], int, int]:
    threads, workers = split_cpus(_cpus(cfg), device)
    run_length = {
        "NPH_NNUNET_EPOCHS": cfg.epochs,
        "NPH_NNUNET_ITERATIONS": cfg.iterations,
        "NPH_NNUNET_VAL_ITERATIONS": cfg.val_iterations,
    }
    extra = {k: str(int(v)) for k, v in run_length.items() if v is not None}
    env = nnunet_env(
        root,
        dict(os.environ),
        threads=threads,
        workers=workers,
        compile_model=bool(cfg.compile) and device == "cuda",
        extra=extra,
    )
    return env, threads, workers


def _export(cfg: DictConfig, root: NnunetRoot) -> None:
    data = list(cfg.data) if isinstance(cfg.data, ListConfig) else [cfg.data]
    if not data or any(d is None for d in data):
        raise InputError("data: give one or more labelled dataset folders, e.g. data=[real,synth]")
    counts = list(cfg.counts) if isinstance(cfg.counts, ListConfig) else [cfg.counts] * len(data)
    if len(counts) != len(data):
        raise InputError(f"counts: {len(counts)} values for {len(data)} data folders")
    sources = [
        Source(Path(d).expanduser(), parse_count(c, f"counts[{i}]"))
        for i, (d, c) in enumerate(zip(data, counts, strict=True))
    ]
    export_nnunet(
        sources,
        root,
        int(cfg.dataset),
        str(cfg.name),
        scheme=parse_scheme(cfg.scheme),
        seed=int(cfg.seed),
        val_cases=int(cfg.val_cases),
        val_source=cfg.val_source,
    )


def _plan(cfg: DictConfig, root: NnunetRoot) -> None:
    name = root.find_dataset(int(cfg.dataset))
    env, threads, workers = _env(cfg, root, "cpu")
    processes = max(1, workers, threads // 2)
    env["nnUNet_n_proc_DA"] = str(processes)  # the planner sets torch threads from it, and 0 is refused there
    cmd = plan_command(int(cfg.dataset), str(cfg.configuration), str(cfg.planner), processes)
    base_features = _base_features(cfg.base_features)
    run_logged(cmd, env, root.root / "logs" / f"plan_{name}.log", "nnU-Net plan and preprocess")
    if base_features is not None:
        plans = root.preprocessed / name / f"{plans_name(str(cfg.planner))}.json"
        features = narrow_network(plans, str(cfg.configuration), base_features)
        log.info("nnU-Net plan: feature maps per stage %s (base_features=%d) in %s", features, base_features, plans)
    install_splits(root, name)


def _base_features(value: object) -> int | None:
    """``base_features``: None (nnU-Net's plan) or a whole number of at least 1, checked before planning."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"base_features={value!r}: must be a whole number of at least 1 (null keeps nnU-Net's plan)")
    return value


def _train(cfg: DictConfig, root: NnunetRoot) -> None:
    name = root.find_dataset(int(cfg.dataset))
    plans = plans_name(str(cfg.planner))
    if not (root.preprocessed / name / f"{plans}.json").is_file():
        raise InputError(
            f"{root.preprocessed / name / (plans + '.json')}: missing "
            f"(run `nph nnunet plan root={root.root} dataset={cfg.dataset}` first)"
        )
    if not (root.preprocessed / name / "splits_final.json").is_file():
        install_splits(root, name)
    device = torch_device(cfg).type
    env, _, _ = _env(cfg, root, device)
    fold_dir = model_folder(root, name, str(cfg.trainer), plans, str(cfg.configuration)) / f"fold_{cfg.fold}"
    resume = resume_training(fold_dir, cfg.resume)
    if resume:
        log.info("nnU-Net train: continuing from the checkpoint in %s (--c)", fold_dir)
    cmd = train_command(int(cfg.dataset), str(cfg.configuration), str(cfg.fold), str(cfg.trainer), plans, device,
                        resume)
    run_logged(cmd, env, root.root / "logs" / f"train_{name}_{cfg.trainer}_fold{cfg.fold}.log", "nnU-Net train")


def _predict(cfg: DictConfig, root: NnunetRoot) -> None:
    if cfg.input is None or cfg.out is None:
        raise InputError("nph nnunet predict needs input=DIR (images) and out=DIR (prediction folder)")
    name = root.find_dataset(int(cfg.dataset))
    model = model_folder(root, name, str(cfg.trainer), plans_name(str(cfg.planner)), str(cfg.configuration))
    require_trained(model, str(cfg.fold), int(cfg.dataset), root.root)
    device = torch_device(cfg).type
    env, threads, workers = _env(cfg, root, device)
    out = Path(cfg.out).expanduser().resolve()
    if cfg.postprocess not in ("auto", "none"):
        raise InputError(f"postprocess={cfg.postprocess!r}: unknown (known: auto, none)")
    reference = root.preprocessed / name / "gt_segmentations" if cfg.postprocess == "auto" else None
    predict_to_folder(
        model,
        Path(cfg.input).expanduser().resolve(),
        out,
        fold=str(cfg.fold),
        device=device,
        threads=threads,
        processes=max(1, workers),
        env=env,
        log_file=root.root / "logs" / f"predict_{name}.log",
        postprocess_reference=reference,
    )
