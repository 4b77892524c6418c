"""The training engine every nph model uses: one :class:`Engine`, models plug in as a :class:`Task`."""

from __future__ import annotations

from nph.training.config import EngineConfig, Precision
from nph.training.engine import Engine, Task, TrainResult

__all__ = ["Engine", "EngineConfig", "Precision", "Task", "TrainResult"]
