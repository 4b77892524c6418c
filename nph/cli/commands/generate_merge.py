"""Merge a generation run's shards into one labelled dataset folder (idempotent).

    nph generate-merge out=DIR [allow_partial=true]
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from nph.cli.options import flag, path
from nph.synthesis.merge import merge
from nph.synthesis.records import SynthesisPaths

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    paths = SynthesisPaths(path(cfg, "out", must_exist=True))
    manifest = merge(paths, allow_partial=flag(cfg, "allow_partial"))
    log.info("%s: merged %d samples into dataset.json and manifest.csv", paths.root, len(manifest))
