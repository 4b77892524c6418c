"""Per-sample seeds: sample i of a run with seed s draws everything from ``SeedSequence([s, i])``.

So a sample does not depend on how samples are split among tasks or batches.
"""

from __future__ import annotations

import numpy as np

__all__ = ["image_seed", "sample_rng", "sample_seed"]

_NOISE, _CONDITION, _IMAGE_NOISE = 0, 1, 2


def _words(seed: int, index: int) -> np.ndarray:
    return np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint64)


def sample_seed(seed: int, index: int) -> int:
    """A 63-bit integer for ``torch.Generator.manual_seed`` (the sample's noise)."""
    return int(_words(seed, index)[_NOISE] >> np.uint64(1))


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """A numpy generator for the sample's other random draws (its condition, say)."""
    return np.random.default_rng(int(_words(seed, index)[_CONDITION]))


def image_seed(seed: int, index: int) -> int:
    """A second, independent noise seed of sample ``index``: the image LDM's, so its noise is not the mask's."""
    words = np.random.SeedSequence([int(seed), int(index)]).generate_state(3, dtype=np.uint64)
    return int(words[_IMAGE_NOISE] >> np.uint64(1))
