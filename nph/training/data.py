"""Which training examples each optimiser step sees: a pure function of (seed, step), so resuming is exact.

The stream of examples is a sequence of epochs; epoch ``e`` is a permutation (or, with weights, a
weighted draw with replacement) seeded by ``(seed, e)``. Micro-batch ``m`` of step ``s`` takes the
next ``batch`` positions of that stream, and rank ``r`` of ``W`` takes every W-th of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["BatchOrder", "collate"]


class BatchOrder:
    """Deterministic example indices for every (step, micro-batch, rank)."""

    def __init__(self, num_examples: int, micro_batch: int, grad_accum: int, seed: int,
                 weights: npt.NDArray[np.floating] | None = None) -> None:
        if num_examples < 1:
            raise ValueError("BatchOrder: the dataset is empty")
        self.num_examples = num_examples
        self.micro_batch = micro_batch
        self.grad_accum = grad_accum
        self.seed = seed
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
        self._epoch = lru_cache(maxsize=4)(self._epoch_order)

    def _epoch_order(self, epoch: int) -> npt.NDArray[np.int64]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
        if self.weights is None:
            return rng.permutation(self.num_examples)
        return rng.choice(self.num_examples, size=self.num_examples, replace=True, p=self.weights)

    def indices(self, step: int, micro: int, rank: int = 0, world_size: int = 1) -> list[int]:
        """Dataset indices of this rank's share of micro-batch ``micro`` of optimiser step ``step``."""
        start = (step * self.grad_accum + micro) * self.micro_batch
        out = []
        for position in range(start + rank, start + self.micro_batch, world_size):
            epoch, offset = divmod(position, self.num_examples)
            out.append(int(self._epoch(epoch)[offset]))
        return out


def collate(examples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack a list of ``{name: tensor}`` examples into one batch."""
    return {key: torch.stack([example[key] for example in examples]) for key in examples[0]}
