"""Typed reads of config values for command modules: one place that turns a bad value into InputError."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nph.errors import InputError

__all__ = ["flag", "guidance_interval", "integer", "number", "optional_path", "path", "plain"]


def plain(cfg: DictConfig, key: str) -> Any:
    """The value as plain Python (lists and dicts instead of OmegaConf containers)."""
    value = cfg[key]
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def integer(cfg: DictConfig, key: str, *, minimum: int | None = None) -> int:
    """A whole number, at least ``minimum`` when given."""
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{key}: expected a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise InputError(f"{key}={value}: must be at least {minimum}")
    return value


def number(cfg: DictConfig, key: str, *, minimum: float | None = None) -> float:
    """A finite real number, at least ``minimum`` when given."""
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InputError(f"{key}: expected a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise InputError(f"{key}={value}: must be at least {minimum}")
    return float(value)


def flag(cfg: DictConfig, key: str) -> bool:
    """true or false."""
    value = cfg[key]
    if not isinstance(value, bool):
        raise InputError(f"{key}: expected true or false, got {value!r}")
    return value


def path(cfg: DictConfig, key: str, *, must_exist: bool = False) -> Path:
    """A filesystem path; with ``must_exist`` a missing one is an error naming it."""
    value = cfg[key]
    if value is None or str(value).strip() == "":
        raise InputError(f"{key}: a path is required")
    result = Path(str(value)).expanduser()
    if must_exist and not result.exists():
        raise InputError(f"{key}={result}: no such file or folder")
    return result


def optional_path(cfg: DictConfig, key: str, *, must_exist: bool = False) -> Path | None:
    """Like :func:`path`, but null or empty means None."""
    value = cfg.get(key)
    if value is None or str(value).strip() == "":
        return None
    return path(cfg, key, must_exist=must_exist)


def torch_device(cfg: DictConfig, key: str = "device") -> Any:
    """``auto`` (a GPU when torch sees one; an error when one was assigned but torch sees none, see nph.device),
    or a torch device name; a GPU asked for where none exists is an error."""
    import torch  # here, not at the top: commands without torch should not pay for importing it

    from nph.device import auto_device

    name = str(cfg[key])
    if name == "auto":
        return auto_device(os.environ)
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise InputError(f"{key}: {name!r} is not a torch device (auto, cpu, cuda, cuda:0, ...)") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{key}={name}: this machine has no CUDA GPU (use {key}=auto or cpu)")
    return device


def guidance_interval(cfg: DictConfig, key: str = "guidance_interval") -> tuple[float, float] | None:
    """``null`` or ``[t_lo, t_hi]`` (noise levels, 0 ≤ t_lo ≤ t_hi ≤ 1), else one clear line naming the key."""
    from nph.sampling.diffusion import check_guidance_interval

    value = plain(cfg, key)
    if value is not None and not isinstance(value, (list, tuple)):
        raise InputError(f"{key}={value!r}: expected null or [t_lo, t_hi] (noise levels in [0, 1])")
    return check_guidance_interval(value)
