"""The mask autoencoder's latents of every case, encoded once on the training device and cached on disk.

``mask_dm`` trains on the posterior (mean and σ) of each label map. Encoding 10k thesis-size maps is
hours on a CPU and minutes on a GPU, so it happens once: in batches, on the device the run trains on,
into ``<training state>/latents-<key>/`` (``mu.npy``, ``sigma.npy``, ``latents.json``). The key is the
autoencoder's weights digest and the case list: every rank and every requeue of the same run reuses the
folder; another autoencoder (or dataset) gets a new one and the stale one is removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from nph.io.atomic import write_json
from nph.progress import progress
from nph.training.case_store import file_lock, publish

__all__ = ["LatentCache", "MaskLatents", "cached_latents", "latent_key"]

log = logging.getLogger(__name__)
INFO = "latents.json"
PREFIX = "latents-"
LOG_EVERY_S = 5.0


def latent_key(ae_digest: str, case_ids: Sequence[str]) -> str:
    """Names the cache: the autoencoder's digest and the cases it encoded."""
    cases = hashlib.sha256("\n".join(case_ids).encode()).hexdigest()[:8]
    return f"{ae_digest[:16]}-{cases}"


class LatentCache:
    """``mu`` and ``sigma`` (N, C, x, y, z) float32, memory-mapped; pickles as its path."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        info = json.loads((self.folder / INFO).read_text())
        self.case_ids: list[str] = list(info["case_ids"])
        self.ae_digest: str = str(info["ae_digest"])
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None:
            self._arrays = tuple(
                np.load(self.folder / f"{n}.npy", mmap_mode="r", allow_pickle=False) for n in ("mu", "sigma")
            )  # type: ignore[assignment]
        assert self._arrays is not None
        return self._arrays

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}


class MaskLatents(Sequence[dict[str, torch.Tensor]]):
    """mask_dm's examples: ``{"mu", "sigma"}`` scaled by the latent scale factor, and the case's ``condition``.

    ``posterior=False`` trains on the means alone (σ = 0).
    """

    def __init__(
        self,
        cache: LatentCache,
        indices: Sequence[int],
        scale: float,
        condition: npt.NDArray[np.floating],
        posterior: bool,
    ) -> None:
        self.cache, self.indices, self.scale, self.posterior = cache, list(indices), float(scale), posterior
        self.condition = np.asarray(condition, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:  # type: ignore[override]
        case = self.indices[index]
        mu_all, sigma_all = self.cache.arrays
        mu = torch.from_numpy(np.array(mu_all[case], dtype=np.float32)) * self.scale
        sigma = (
            torch.from_numpy(np.array(sigma_all[case], dtype=np.float32)) * self.scale
            if self.posterior
            else torch.zeros_like(mu)
        )
        return {"mu": mu, "sigma": sigma, "condition": torch.tensor(float(self.condition[case]))}


def cached_latents(
    ae: nn.Module,
    labels: Sequence[dict[str, torch.Tensor]],
    case_ids: Sequence[str],
    ae_digest: str,
    folder: Path,
    device: torch.device,
    batch_size: int = 4,
) -> LatentCache:
    """The latents of ``labels`` under ``folder`` (the training state), encoding them only if not cached.

    Args:
        ae: the frozen mask autoencoder (``encode(labels) -> (mu, sigma)``).
        labels: examples ``{"labels": (X, Y, Z) long}``, one per case id.
        case_ids: the cases, in the order of ``labels``.
        ae_digest: the autoencoder bundle's digest (``bundle_digest``).
        folder: the stage's training-state folder.
        device: where to encode (the training device).
        batch_size: label maps per forward pass.
    """
    folder = Path(folder)
    target = folder / f"{PREFIX}{latent_key(ae_digest, case_ids)}"
    if not (target / INFO).is_file():
        with file_lock(folder / f".{target.name}.lock"):
            if not (target / INFO).is_file():
                _encode(ae, labels, list(case_ids), ae_digest, target, device, max(1, int(batch_size)))
                _remove_stale(folder, keep=target)
    else:
        log.info("mask latents: reusing %s", target)
    return LatentCache(target)


@torch.inference_mode()
def _encode(
    ae: nn.Module,
    labels: Sequence[dict[str, torch.Tensor]],
    case_ids: list[str],
    ae_digest: str,
    target: Path,
    device: torch.device,
    batch_size: int,
) -> None:
    """Encode every case in batches on ``device`` into a temporary folder, then rename it to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    ae = ae.to(device).eval()
    try:
        arrays: dict[str, np.ndarray] = {}
        last, started = time.monotonic(), time.monotonic()
        for start in progress(range(0, len(case_ids), batch_size), desc="encode masks", unit="batch", in_logs=False):
            batch = torch.stack([labels[i]["labels"] for i in range(start, min(start + batch_size, len(case_ids)))])
            for name, value in zip(("mu", "sigma"), ae.encode(batch.to(device)), strict=True):
                if name not in arrays:
                    arrays[name] = np.lib.format.open_memmap(
                        tmp / f"{name}.npy", mode="w+", dtype=np.float32, shape=(len(case_ids), *value.shape[1:])
                    )
                arrays[name][start : start + len(batch)] = value.float().cpu().numpy()
            if time.monotonic() - last > LOG_EVERY_S:
                log.info("mask latents: %d of %d cases encoded on %s", start + len(batch), len(case_ids), device)
                last = time.monotonic()
        for array in arrays.values():
            array.flush()
        del arrays
        write_json(tmp / INFO, {"ae_digest": ae_digest, "case_ids": case_ids, "device": str(device)})
        publish(tmp, target, INFO)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info(
        "mask latents: %d cases encoded on %s in %.1f s → %s", len(case_ids), device, time.monotonic() - started, target
    )


def _remove_stale(folder: Path, keep: Path) -> None:
    """Latents of another autoencoder or case list: never read again."""
    for old in folder.glob(f"{PREFIX}*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
