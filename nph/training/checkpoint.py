"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)`` (no unpickling).

Everything in a checkpoint is a tensor or a plain type, RNG states included, so a resumed run
continues bit-for-bit where the interrupted one stopped.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nph.errors import InputError
from nph.io.atomic import atomic_path

__all__ = ["CHECKPOINT_NAME", "capture_rng", "load_checkpoint", "restore_rng", "save_checkpoint"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def capture_rng() -> dict[str, Any]:
    """The state of every random generator a training step may draw from, as tensors and plain types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put the generators back into the captured state."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the RNG states and a format version) atomically to ``path``."""
    payload = {**state, "rng": capture_rng(), "format": FORMAT_VERSION}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    log.info("checkpoint: step %d → %s", state.get("step", -1), path)


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; a damaged one is an :class:`InputError`."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, … for damaged files
        message = " ".join(str(err).split())[:200]
        raise InputError(f"{path}: not a readable training checkpoint ({type(err).__name__}: {message})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise InputError(f"{path}: not an nph training checkpoint (format {FORMAT_VERSION} expected)")
    return state
