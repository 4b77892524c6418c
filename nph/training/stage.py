"""What a training stage hands the ``train`` command: task, examples, and how to describe the result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from nph.models.bundle import BundleKind
from nph.training.engine import Task

__all__ = ["StageSetup"]


@dataclass
class StageSetup:
    """Everything a stage gives the engine, and what turns the trained weights into bundle meta.

    ``examples`` and ``validation`` are disjoint sets of cases (split by case, recorded in ``meta["cases"]``);
    ``finish(weights)`` returns the bundle's meta (it may evaluate the trained network);
    ``weights`` are optional per-example sampling weights (oversampling).
    """

    kind: BundleKind
    task: Task
    examples: Sequence[dict[str, torch.Tensor]]
    validation: Sequence[dict[str, torch.Tensor]]
    bundle_config: dict[str, Any]
    finish: Callable[[dict[str, torch.Tensor]], dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    weights: npt.NDArray[np.float64] | None = None
