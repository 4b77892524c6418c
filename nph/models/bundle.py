"""Model bundles (DESIGN.md): ``config.yaml`` + ``weights.safetensors`` + ``meta.json``, nothing unpickled.

``meta.json`` is written last and carries the SHA-256 of the weights, so a half-written or altered
bundle is refused with a one-line :class:`InputError` instead of loading wrong weights.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import subprocess
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nph import __version__
from nph.errors import InputError
from nph.io.atomic import atomic_path, write_json, write_text

__all__ = ["BundleKind", "bundle_digest", "load_bundle", "save_bundle"]

log = logging.getLogger(__name__)
CONFIG, WEIGHTS, META = "config.yaml", "weights.safetensors", "meta.json"


class BundleKind(str, Enum):
    MASK_AE = "mask_ae"
    MASK_DM = "mask_dm"
    IMAGE_AE = "image_ae"
    IMAGE_DM = "image_dm"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin:/usr/local/bin"}, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def save_bundle(folder: str | Path, kind: str | BundleKind, config: Mapping[str, Any],
                state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write a bundle into ``folder`` (created); every file atomically, ``meta.json`` last.

    Args:
        folder: the bundle folder, e.g. ``models/mask_ae``.
        kind: what the weights are (mask_ae | mask_dm | image_ae | image_dm).
        config: resolved network/training config (plain types), enough to rebuild the network.
        state_dict: the weights (EMA where kept).
        meta: latent scale factor, conditioning normalisation, shape/spacing, steps, … (JSON types).
    """
    folder, kind = Path(folder), BundleKind(kind)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(tensors, str(tmp))
    write_text(folder / CONFIG, yaml.safe_dump(dict(config), sort_keys=False))
    full_meta = {**dict(meta), "kind": kind.value, "nph_version": __version__, "git_commit": _git_commit(),
                 "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "weights_sha256": _sha256(folder / WEIGHTS), "config_sha256": _sha256(folder / CONFIG)}
    write_json(folder / META, full_meta)
    log.info("bundle %s (%s, %d tensors) → %s", kind.value, full_meta.get("steps", "?"), len(tensors), folder)
    return folder


def bundle_digest(folder: str | Path) -> str:
    """Short id of a bundle's weights, recorded as provenance by the stages that use it."""
    return str(_read_meta(Path(folder))["weights_sha256"])[:16]


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META
    if not path.is_file():
        hint = "not a model bundle folder" if not (folder / WEIGHTS).exists() else "incomplete bundle"
        raise InputError(f"{path}: missing ({hint}; train it with `nph train stage=...`)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(meta, dict) or "kind" not in meta or "weights_sha256" not in meta:
        raise InputError(f"{path}: not an nph bundle meta.json (needs 'kind' and 'weights_sha256')")
    return meta


def load_bundle(folder: str | Path, kind: str | BundleKind | None = None,
                ) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """Read and check a bundle; returns ``(config, state_dict, meta)``.

    Raises:
        InputError: missing files, wrong kind, weights or config that do not match their recorded hash,
            unreadable safetensors/YAML.
    """
    folder = Path(folder)
    meta = _read_meta(folder)
    if kind is not None and meta["kind"] != BundleKind(kind).value:
        raise InputError(f"{folder / META}: bundle kind is '{meta['kind']}', expected '{BundleKind(kind).value}'")
    for name, key in ((WEIGHTS, "weights_sha256"), (CONFIG, "config_sha256")):
        path = folder / name
        if not path.is_file():
            raise InputError(f"{path}: missing from the bundle")
        if key in meta and _sha256(path) != meta[key]:
            raise InputError(f"{path}: content does not match meta.json's {key} (corrupt or replaced)")
    try:
        config = yaml.safe_load((folder / CONFIG).read_text())
        state = load_file(str(folder / WEIGHTS))
    except (yaml.YAMLError, SafetensorError, OSError) as err:
        raise InputError(f"{folder}: unreadable bundle ({' '.join(str(err).split())})") from err
    if not isinstance(config, dict):
        raise InputError(f"{folder / CONFIG}: expected a mapping")
    return config, state, meta
