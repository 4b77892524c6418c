"""Which training examples each optimiser step sees: a pure function of (seed, step), so resuming is exact.

The stream of examples is a sequence of epochs; epoch ``e`` is a permutation (or, with weights, a
weighted draw with replacement) seeded by ``(seed, e)``. Micro-batch ``m`` of step ``s`` takes the
next ``batch`` positions of that stream, and rank ``r`` of ``W`` takes every W-th of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from nph.errors import InputError

__all__ = ["BatchOrder", "MicroBatches", "collate", "split_cases", "split_meta"]


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


class MicroBatches:
    """The index lists of this rank's micro-batches from ``start`` to ``stop`` (a DataLoader ``batch_sampler``).

    Workers only load what this plan names, so prefetching never changes which examples a step sees.
    """

    def __init__(self, order: BatchOrder, start: int, stop: int, rank: int = 0, world_size: int = 1) -> None:
        self.order, self.start, self.stop, self.rank, self.world_size = order, start, stop, rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            for micro in range(self.order.grad_accum):
                yield self.order.indices(step, micro, self.rank, self.world_size)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.order.grad_accum


def split_cases(case_ids: Sequence[str], validation_cases: int, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the training and the validation cases: held out by case, never seen in training.

    A permutation of the sorted case ids seeded by ``seed`` puts its first ``validation_cases`` aside, so the
    split depends on the set of cases, not their order, and a smaller validation set is a subset of a larger
    one (the mask stages share their held-out cases when their counts differ).

    Raises:
        InputError: a negative count, or one that leaves no training case.
    """
    count = int(validation_cases)
    if count < 0 or count >= len(case_ids):
        raise InputError(f"validation_cases: {count} of {len(case_ids)} cases leaves no training case "
                         f"(expected 0 <= validation_cases < {len(case_ids)})")
    ranked = sorted(range(len(case_ids)), key=lambda i: case_ids[i])
    permuted = np.random.default_rng(np.random.SeedSequence(int(seed))).permutation(len(ranked))
    held_out = {ranked[int(p)] for p in permuted[:count]}
    training = [i for i in range(len(case_ids)) if i not in held_out]
    return training, sorted(held_out)


def split_meta(case_ids: Sequence[str], training: Sequence[int], validation: Sequence[int],
               seed: int) -> dict[str, Any]:
    """The split as a bundle's meta.json records it: which case ids trained, which validated."""
    return {"seed": int(seed), "training": [case_ids[i] for i in training],
            "validation": [case_ids[i] for i in validation]}


def collate(examples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack a list of ``{name: tensor}`` examples into one batch."""
    return {key: torch.stack([example[key] for example in examples]) for key in examples[0]}
