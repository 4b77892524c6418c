"""Train one stage (mask_ae | mask_dm | image_ae | image_dm) into a model bundle models/<stage>/.

    nph train stage=mask_ae data=DIR models=DIR [experiment=tiny]

Sizes and engine settings come from the experiment config's <stage> section. Re-running the same command
resumes from models/<stage>/training/checkpoint.pt (also after SIGTERM/SIGUSR2, e.g. a SLURM timeout).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from nph.data.dataset import SYNTHSEG, dataset_label_scheme
from nph.device import auto_device
from nph.errors import InputError, Interrupted
from nph.models.bundle import save_bundle
from nph.training import Engine, EngineConfig
from nph.training.distributed import dist_env_from_environ, shutdown_distributed
from nph.training.engine import default_device
from nph.training.tracking import Tracker, read_local_config, run_id_for

__all__ = ["STAGE_MODULES", "run"]

log = logging.getLogger(__name__)
#: stage → module whose ``STAGES[stage]`` builds it (imported only when that stage runs)
STAGE_MODULES = {"mask_ae": "nph.training.mask_stages", "mask_dm": "nph.training.mask_stages",
                 "image_ae": "nph.training.image_stages", "image_dm": "nph.training.image_stages"}
#: models/<CACHE_FOLDER>: the memory-mapped case stores every stage reads its training data from
CACHE_FOLDER = "cache"


def run(cfg: DictConfig) -> None:
    """Build the stage, train it with the engine, and write the bundle (rank 0)."""
    stage = str(cfg.stage)
    if stage not in STAGE_MODULES:
        raise InputError(f"stage={stage}: expected one of {', '.join(STAGE_MODULES)}")
    if stage not in cfg or not OmegaConf.is_dict(cfg[stage]):
        raise InputError(f"stage={stage}: experiment={cfg.experiment} has no '{stage}:' section")
    section: dict[str, Any] = OmegaConf.to_container(cfg[stage], resolve=True)  # type: ignore[assignment]
    if "train" not in section:
        raise InputError(f"{stage}.train: missing (the engine settings of this stage)")
    engine_cfg = EngineConfig.from_dict(dict(section["train"]))
    models = Path(str(cfg.models))
    _check_label_scheme(Path(str(cfg.data)))
    env = dist_env_from_environ(os.environ)
    auto_device(os.environ)  # a GPU the scheduler assigned but torch cannot see is an error, not a CPU run
    device = default_device(env)
    setup = _setup_or_clean(stage, section, cfg, models, device)
    out = models / stage
    run_config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    tracker = _tracker(cfg, stage, out, run_config) if env.is_main else None
    engine = Engine(setup.task, setup.examples, engine_cfg, out / "training", run_config=run_config, dist_env=env,
                    tracker=tracker, weights=getattr(setup, "weights", None), validation=setup.validation,
                    device=device)
    try:
        result = engine()
    finally:
        shutdown_distributed()
    if result.interrupted:
        raise Interrupted(f"{stage} stopped at step {result.steps} of {engine_cfg.max_steps} with its checkpoint in "
                          f"{out / 'training'}; run the same command again to resume")
    if env.is_main:
        meta = {**setup.finish(result.weights), "steps": result.steps, "final_loss": result.losses[-1],
                "validation": result.validation}
        config = {"experiment": str(cfg.experiment), "grid": run_config.get("grid"), **setup.bundle_config,
                  "train": section["train"]}
        save_bundle(out, setup.kind, config, result.weights, meta)


def _check_label_scheme(data: Path) -> None:
    """The LDMs learn SynthSeg's 33 labels and condition on the ventricle/ICV fraction: a ventricle-only
    dataset (no ICV) or an image-only folder cannot train them."""
    if not (data / "dataset.json").is_file():
        return  # the stage's own loader names the missing folder
    scheme = dataset_label_scheme(data)
    if scheme != SYNTHSEG:
        what = "an image-only folder (no label maps)" if scheme is None else f"a label_scheme={scheme} dataset (no ICV)"
        raise InputError(f"data={data}: {what}; the LDMs train on SynthSeg-labelled datasets (label_scheme=synthseg "
                         "or aseg at nph ingest)")


def _setup_or_clean(stage: str, section: dict[str, Any], cfg: DictConfig, models: Path, device: torch.device) -> Any:
    """The stage's setup; a refusal there (bad data, an init bundle that does not fit) leaves no ``models`` folder
    behind if this run created it (the case store is built before some checks can run)."""
    created = not models.exists()
    try:
        return _setup(stage, section, cfg, models, device)
    except InputError:
        if created:
            shutil.rmtree(models, ignore_errors=True)
        raise


def _setup(stage: str, section: dict[str, Any], cfg: DictConfig, models: Path, device: torch.device) -> Any:
    """The stage's StageSetup; cases come from the memory-mapped store in ``models/cache`` (built once)."""
    factory = importlib.import_module(STAGE_MODULES[stage]).STAGES[stage]
    kwargs: dict[str, Any] = {"grid_shape": tuple(cfg.grid.shape) if "grid" in cfg else None,
                              "init": cfg.get("init"), "cache": models / CACHE_FOLDER,
                              "split_seed": int(cfg.get("split_seed", 0)), "device": device}
    if "models" in inspect.signature(factory).parameters:
        kwargs["models"] = models
    return factory(section, Path(str(cfg.data)), **kwargs)


def _tracker(cfg: DictConfig, stage: str, out: Path, run_config: dict[str, Any]) -> Tracker:
    wandb = cfg.get("wandb", {})
    local = read_local_config(Path(str(wandb.get("local_config", "local_config.yml"))))
    return Tracker(mode=str(wandb.get("mode", "offline")), run_id=run_id_for(str(cfg.experiment), stage, out),
                   directory=out / "training", config=run_config, group=str(cfg.experiment),
                   project=wandb.get("project") or local.get("project"),
                   entity=wandb.get("entity") or local.get("entity"))
