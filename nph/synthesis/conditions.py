"""Target distributions of the requested (normalised) ventricle fraction: what the mask model is asked for.

Values are in the mask model's normalised units: 0 = smallest training ventricles, 1 = largest,
above 1 = beyond anything seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from nph.errors import InputError
from nph.seeds import sample_rng

__all__ = ["ConditionKind", "ConditionSpec", "bucket_centres", "draw_condition"]


class ConditionKind(str, Enum):
    UNIFORM = "uniform"  # uniform over [low, high]
    LIST = "list"  # sample i asks for values[i % len(values)]
    EMPIRICAL = "empirical"  # the normalised fractions of a labelled dataset
    LARGE = "large"  # the empirical values re-weighted towards large ventricles
    BUCKETS = "buckets"  # sample i: centre i % n of low, low+width, ... (< high), ± width/2 jitter (the thesis)


@dataclass(frozen=True)
class ConditionSpec:
    """How conditions are drawn. ``empirical`` holds normalised values for the two empirical kinds."""

    kind: ConditionKind = ConditionKind.UNIFORM
    low: float = 0.0
    high: float = 1.2
    values: tuple[float, ...] = ()
    empirical: tuple[float, ...] = field(default=(), repr=False)
    power: float = 2.0  # LARGE: weight ∝ (rank / count) ** power
    width: float = 0.1  # BUCKETS: spacing of the centres and width of the jitter around each

    def __post_init__(self) -> None:
        if self.kind is ConditionKind.UNIFORM and not self.low <= self.high:
            raise InputError(f"conditions: low={self.low} must not exceed high={self.high}")
        if self.kind is ConditionKind.BUCKETS and not (self.width > 0 and self.low < self.high):
            raise InputError(f"conditions: kind=buckets needs width > 0 and low < high, got width={self.width}, "
                             f"low={self.low}, high={self.high}")
        if self.kind is ConditionKind.LIST and not self.values:
            raise InputError("conditions.values: empty list for kind=list")
        if self.kind in (ConditionKind.EMPIRICAL, ConditionKind.LARGE) and not self.empirical:
            raise InputError(f"conditions: kind={self.kind.value} needs a dataset with cases (conditions.dataset=DIR)")


def draw_condition(spec: ConditionSpec, seed: int, index: int) -> float:
    """The condition of sample ``index``: a function of (spec, seed, index) only."""
    if spec.kind is ConditionKind.LIST:
        return float(spec.values[index % len(spec.values)])
    rng = sample_rng(seed, index)
    if spec.kind is ConditionKind.BUCKETS:
        centres = bucket_centres(spec)
        return float(centres[index % len(centres)] + rng.uniform(-spec.width / 2, spec.width / 2))
    if spec.kind is ConditionKind.UNIFORM:
        return float(rng.uniform(spec.low, spec.high))
    values = np.sort(np.asarray(spec.empirical, dtype=np.float64))
    if spec.kind is ConditionKind.EMPIRICAL:
        return float(rng.choice(values))
    weights = (np.arange(1, len(values) + 1) / len(values)) ** spec.power
    return float(rng.choice(values, p=weights / weights.sum()))


def bucket_centres(spec: ConditionSpec) -> np.ndarray:
    """Centres ``low, low + width, ...`` below ``high``: Ruschke's synthetic dataset asked for 0.05, 0.15, ..., 0.95
    in turn, each jittered by ± 0.05, i.e. equal numbers of samples per tenth of the training range."""
    count = int(np.ceil((spec.high - spec.low) / spec.width - 1e-9))
    return spec.low + spec.width * np.arange(count)
