"""W&B tracking, offline-first: a run that cannot reach W&B keeps training and says so once.

Project and entity come from the config or from a ``local_config.yml`` (``wandb: {project, entity}``,
as the thesis kept them); ``WANDB_MODE`` in the environment wins over the configured mode. Run ids
are derived from (experiment, stage, output folder), so a requeued job resumes its own run.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import yaml

__all__ = ["Tracker", "read_local_config", "run_id_for", "three_plane"]

log = logging.getLogger(__name__)
MODES = ("online", "offline", "disabled")


def run_id_for(experiment: str, stage: str, out_dir: Path) -> str:
    """A W&B run id that is the same every time the same stage trains into the same folder."""
    key = f"{experiment}|{stage}|{Path(out_dir).resolve()}"
    return f"{stage}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def read_local_config(path: Path) -> dict[str, str]:
    """``wandb:`` section of a ``local_config.yml`` (project, entity), or nothing when the file is absent."""
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text()) or {}
    section = loaded.get("wandb", {}) if isinstance(loaded, dict) else {}
    return {k: str(v) for k, v in section.items() if k in ("project", "entity") and v}


def three_plane(volume: npt.NDArray, *, vmax: float | None = None) -> npt.NDArray[np.uint8]:
    """Sagittal, coronal and axial middle slices of a RAS+ volume side by side, as an 8-bit image."""
    vol = np.asarray(volume, dtype=np.float32)
    x, y, z = (s // 2 for s in vol.shape)
    planes = [np.rot90(vol[x, :, :]), np.rot90(vol[:, y, :]), np.rot90(vol[:, :, z])]
    height = max(p.shape[0] for p in planes)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 1))) for p in planes]
    mosaic = np.concatenate(padded, axis=1)
    top = vmax if vmax is not None else float(mosaic.max()) or 1.0
    return (np.clip(mosaic / top, 0.0, 1.0) * 255).astype(np.uint8)


class Tracker:
    """Thin, failure-proof wrapper around one W&B run (or nothing, when disabled or not rank 0)."""

    def __init__(
        self,
        *,
        mode: str,
        run_id: str,
        directory: Path,
        config: Mapping[str, Any],
        project: str | None = None,
        entity: str | None = None,
        group: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.mode = env.get("WANDB_MODE", mode)
        self._run: Any = None
        if self.mode not in MODES:
            log.warning("tracking: unknown W&B mode %r, tracking disabled", self.mode)
            return
        if self.mode == "disabled":
            return
        try:
            import wandb

            directory.mkdir(parents=True, exist_ok=True)
            self._run = wandb.init(project=project or "nph", entity=entity, id=run_id, resume="allow",
                                   mode=cast(Any, self.mode), dir=str(directory), config=dict(config), group=group,
                                   name=run_id, reinit="create_new")
        except Exception as err:  # W&B must never stop training: no network, bad key, full disk …
            log.warning("tracking: W&B unavailable, continuing without it (%s)", err)
            self._run = None

    @property
    def active(self) -> bool:
        return self._run is not None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self._call(lambda: self._run.log(dict(metrics), step=step))

    def log_volume(self, name: str, volume: npt.NDArray, step: int, *, vmax: float | None = None) -> None:
        """Log a three-plane view of ``volume`` (RAS+) as an image."""

        def _log() -> None:
            import wandb

            self._run.log({name: wandb.Image(three_plane(volume, vmax=vmax))}, step=step)

        self._call(_log)

    def finish(self) -> None:
        self._call(lambda: self._run.finish())
        self._run = None

    def _call(self, action: Any) -> None:
        if self._run is None:
            return
        try:
            action()
        except Exception as err:  # a lost connection disables tracking, never the training
            log.warning("tracking: W&B call failed, tracking disabled for this run (%s)", err)
            self._run = None
