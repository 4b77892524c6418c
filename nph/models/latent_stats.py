"""The latent scale factor (Rombach et al. 2022): 1 / std of an autoencoder's latents, accumulated case by case.

Latents are combined one tensor at a time (Chan et al.'s pairwise update of count, mean and squared
deviations, in float64), so measuring the scale over many training cases holds one case's latent at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

__all__ = ["inverse_std"]


def inverse_std(latents: Iterable[torch.Tensor]) -> float:
    """1 / sample standard deviation (as ``torch.std``) of every value of ``latents`` taken together.

    Raises:
        RuntimeError: no values, or a standard deviation that is zero or not finite.
    """
    count, mean, squares = 0, 0.0, 0.0
    for latent in latents:
        values = latent.detach().to(torch.float64).flatten()
        n = values.numel()
        if n == 0:
            continue
        batch_mean = float(values.mean())
        batch_squares = float((values - batch_mean).square().sum())
        delta, total = batch_mean - mean, count + n
        mean += delta * n / total
        squares += batch_squares + delta * delta * count * n / total
        count = total
    std = math.sqrt(squares / (count - 1)) if count > 1 else float("nan")
    if not math.isfinite(std) or std <= 0:
        raise RuntimeError(f"latent scale factor: latents have standard deviation {std} over {count} values")
    return 1.0 / std
