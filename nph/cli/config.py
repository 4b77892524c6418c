"""Finding and composing the Hydra configs, from a checkout or an installed package."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nph.errors import InputError

__all__ = ["CONFIG_DIR_ENV", "compose_config", "config_dir", "config_name"]

CONFIG_DIR_ENV = "NPH_CONFIG_DIR"


def config_dir() -> Path:
    """``$NPH_CONFIG_DIR`` if set, else the ``configs/`` shipped with the package (a link to the checkout's)."""
    override = os.environ.get(CONFIG_DIR_ENV)
    folder = Path(override) if override else Path(__file__).resolve().parents[1] / "configs"
    if not folder.is_dir():
        raise InputError(f"{folder}: config folder not found (set {CONFIG_DIR_ENV} to nph's configs/)")
    return folder.resolve()


def config_name(command: str) -> str:
    return command.replace("-", "_")


def compose_config(command: str, overrides: Sequence[str]) -> DictConfig:
    """Compose ``configs/<command>.yaml`` with the user's overrides and resolve every interpolation."""
    folder = config_dir()
    name = config_name(command)
    if not (folder / f"{name}.yaml").is_file():
        raise InputError(f"{folder / (name + '.yaml')}: no config for command '{command}'")
    try:
        with initialize_config_dir(config_dir=str(folder), version_base="1.3"):
            cfg = compose(config_name=name, overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as err:
        message = " ".join(str(err).split())
        raise InputError(f"nph {command}: bad configuration: {message}") from err
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise InputError(f"nph {command}: required setting(s) missing: {', '.join(f'{k}=...' for k in missing)}")
    return cfg
