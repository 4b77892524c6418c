"""Generate synthetic (label map, image) pairs with the mask and image LDMs, sharded and resumable.

    nph generate models=DIR n=N out=DIR seed=S [shard=k/K] [conditions.kind=uniform conditions.high=1.5]

Sample i depends only on (seed, i). With shard=k/K only task k's samples are made (merge later with
`nph generate-merge`); without it every sample is made and the dataset is merged at the end.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from nph import __version__
from nph.cli.options import guidance_interval, integer, number, optional_path, path, plain, torch_device
from nph.data.dataset import LabelledDataset
from nph.errors import InputError
from nph.synthesis.conditions import ConditionKind, ConditionSpec
from nph.synthesis.generate import generate_shard
from nph.synthesis.ldm_sampler import LdmPairSampler
from nph.synthesis.merge import merge
from nph.synthesis.records import SynthesisPaths, check_run_settings
from nph.synthesis.shards import parse_shard

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    n, seed = integer(cfg, "n", minimum=1), integer(cfg, "seed")
    shard = parse_shard(cfg.shard)
    models = path(cfg, "models", must_exist=True)
    sampler = LdmPairSampler(
        models,
        seed=seed,
        guidance=number(cfg, "guidance", minimum=0.0),
        sampler=str(cfg.sampler),
        steps=integer(cfg, "steps", minimum=1),
        guidance_interval=guidance_interval(cfg),
        device=torch_device(cfg),
    )
    conditions = _conditions(cfg, sampler.masks.meta["condition"])
    paths = SynthesisPaths(path(cfg, "out"))
    check_run_settings(
        paths,
        {
            "n": n,
            "seed": seed,
            "shards": shard.count,
            "conditions": plain(cfg, "conditions"),
            "guidance": sampler.guidance,
            "sampler": sampler.sampler,
            "steps": sampler.steps,
            **_interval_setting(sampler.guidance_interval),
            "models": sampler.provenance,
            "modality": "MRI",
            "nph_version": __version__,
        },
    )
    report = generate_shard(
        sampler,
        paths,
        n=n,
        seed=seed,
        shard=shard,
        conditions=conditions,
        batch_size=integer(cfg, "batch_size", minimum=1),
        provenance=sampler.provenance,
        writer_threads=integer(cfg, "writer_threads", minimum=1),
    )
    if cfg.shard is None:
        merge(paths)
        log.info("%s: %d samples merged into a labelled dataset folder", paths.root, n)
    log.info("made %d, found %d done, %.2f samples/s", report.generated, report.skipped, report.samples_per_second)


def _interval_setting(interval: tuple[float, float] | None) -> dict[str, list[float]]:
    """The run-settings entry of the guidance interval; none when guidance runs at every step, so runs started
    before guidance intervals existed still resume."""
    return {} if interval is None else {"guidance_interval": list(interval)}


def _conditions(cfg: DictConfig, training_range: dict) -> ConditionSpec:
    """The condition distribution; empirical kinds read a dataset's fractions in the model's normalised units."""
    section = cfg.conditions
    try:
        kind = ConditionKind(str(section.kind))
    except ValueError:
        known = [k.value for k in ConditionKind]
        raise InputError(f"conditions.kind={section.kind}: expected one of {known}") from None
    empirical: tuple[float, ...] = ()
    if kind in (ConditionKind.EMPIRICAL, ConditionKind.LARGE):
        dataset = optional_path(section, "dataset", must_exist=True)
        if dataset is None:
            raise InputError(f"conditions.dataset: kind={kind.value} needs a labelled dataset folder")
        fractions = LabelledDataset(Path(dataset)).manifest["ventricle_fraction"].to_numpy(dtype=np.float64)
        low, high = float(training_range["min"]), float(training_range["max"])
        empirical = tuple(float(v) for v in (fractions - low) / (high - low))
    return ConditionSpec(
        kind,
        low=number(section, "low"),
        high=number(section, "high"),
        values=tuple(float(v) for v in plain(section, "values")),
        empirical=empirical,
        power=number(section, "power"),
        width=number(section, "width") if "width" in section else 0.1,
    )
