"""Starting a stage from an existing bundle (``init=BUNDLE``): pretrain on one dataset, fine-tune on another.

The thesis pretrained the image model on 10k synthetic T1 brains and fine-tuned it on 6.9k FLAIR scans.
Weights only fit if the bundle was trained for the same kind of model, network, label table and grid spacing;
anything that differs is listed in one :class:`InputError` line instead of failing deep inside ``load_state_dict``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nph.data.labels import label_id_table
from nph.errors import InputError
from nph.models.bundle import BundleKind, bundle_digest, load_bundle

__all__ = ["SPACING_TOLERANCE_MM", "bundle_differences", "init_from_bundle"]

log = logging.getLogger(__name__)
SPACING_TOLERANCE_MM = 1e-3


def _plain(value: Any) -> Any:
    """Lists for tuples, recursively, so a YAML round trip compares equal."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def bundle_differences(config: Mapping[str, Any], meta: Mapping[str, Any], network: Mapping[str, Any],
                       spacing: tuple[float, ...]) -> list[str]:
    """What differs between a bundle (its ``config``/``meta``) and the run that wants to start from it."""
    problems = []
    if meta.get("label_ids") != label_id_table():
        problems.append("label table (the bundle's meta.json 'label_ids' is not nph's 33 SynthSeg labels)")
    theirs, ours = _plain(config.get("network", {})), _plain(network)
    for key in sorted(set(theirs) | set(ours)):
        if theirs.get(key) != ours.get(key):
            problems.append(f"network.{key}: bundle {theirs.get(key)!r}, config {ours.get(key)!r}")
    bundle_spacing = meta.get("spacing")
    if bundle_spacing is None or len(bundle_spacing) != len(spacing) or not np.allclose(
            bundle_spacing, spacing, atol=SPACING_TOLERANCE_MM):
        problems.append(f"spacing: bundle {bundle_spacing}, config {list(spacing)} mm")
    return problems


def init_from_bundle(folder: str | Path, kind: str | BundleKind, net: nn.Module, network: Mapping[str, Any],
                     spacing: tuple[float, ...]) -> str:
    """Load the weights of the bundle at ``folder`` into ``net`` after checking it fits; returns its digest.

    Raises:
        InputError: not a bundle, a different kind, or a label table/network/spacing that differs (all listed).
    """
    folder = Path(folder)
    config, state, meta = load_bundle(folder, kind)
    problems = bundle_differences(config, meta, network, spacing)
    if problems:
        raise InputError(f"init={folder}: bundle does not match this config: {'; '.join(problems)}")
    try:
        net.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as err:
        raise InputError(f"init={folder}: weights do not fit the network ({' '.join(str(err).split())[:200]})") from err
    log.info("initialised %s from %s (steps trained there: %s)", BundleKind(kind).value, folder, meta.get("steps"))
    return bundle_digest(folder)
