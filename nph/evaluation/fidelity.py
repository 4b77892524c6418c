"""Conditioning fidelity: does a generated mask have the ventricle size that was asked for?

Both sequences must be in the same units (the mask model's normalised condition, or raw ventricle fractions).
Requests above 1.0 ask for larger ventricles than any seen in training (extrapolation) and are reported apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["DEFAULT_BINS", "conditioning_fidelity"]

#: Bin edges over the training range [0, 1] of the normalised condition.
DEFAULT_BINS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


def _correlations(requested: npt.NDArray, realised: npt.NDArray) -> dict[str, float | None]:
    if requested.size < 3 or np.ptp(requested) == 0 or np.ptp(realised) == 0:
        return {"pearson_r": None, "spearman_rho": None}
    return {"pearson_r": float(stats.pearsonr(requested, realised).statistic),
            "spearman_rho": float(stats.spearmanr(requested, realised).statistic)}


def _block(requested: npt.NDArray, realised: npt.NDArray) -> dict[str, Any]:
    """n, MAE, bias and means of one group of pairs (None where empty)."""
    if requested.size == 0:
        return {"n": 0, "mae": None, "bias": None, "mean_requested": None, "mean_realised": None}
    error = realised - requested
    return {"n": int(requested.size), "mae": float(np.abs(error).mean()), "bias": float(error.mean()),
            "mean_requested": float(requested.mean()), "mean_realised": float(realised.mean())}


def conditioning_fidelity(
    requested: Sequence[float] | npt.NDArray, realised: Sequence[float] | npt.NDArray,
    *, bins: Sequence[float] = DEFAULT_BINS,
) -> dict[str, Any]:
    """Agreement of realised with requested conditions: overall, per bin of the request, and beyond 1.0.

    Args:
        requested: the requested condition per sample.
        realised: what the sample turned out to have, in the same units.
        bins: increasing bin edges for the per-bin means (last bin closed on the right).

    Returns:
        ``{"n", "n_dropped", "pearson_r", "spearman_rho", "mae", "bias", "mean_requested", "mean_realised",
        "bins": [{"low", "high", "n", "mae", "bias", "mean_requested", "mean_realised"}, ...],
        "extrapolation": {... the same for requests > 1.0, with "pearson_r"/"spearman_rho"}}``;
        pairs with a non-finite value are dropped and counted.

    Raises:
        ValueError: the two sequences differ in length or the bins are not increasing.
    """
    req, real = np.asarray(requested, np.float64), np.asarray(realised, np.float64)
    if req.shape != real.shape or req.ndim != 1:
        raise ValueError(f"requested and realised must be 1-D of one length, got {req.shape} and {real.shape}")
    edges = np.asarray(bins, np.float64)
    if edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bins must be at least two increasing edges, got {list(bins)}")
    keep = np.isfinite(req) & np.isfinite(real)
    req, real = req[keep], real[keep]
    out: dict[str, Any] = {"n_dropped": int((~keep).sum()), **_block(req, real), **_correlations(req, real)}
    out["bins"] = []
    for i, (low, high) in enumerate(itertools.pairwise(edges)):
        last = i == edges.size - 2
        inside = (req >= low) & ((req <= high) if last else (req < high))
        out["bins"].append({"low": float(low), "high": float(high), **_block(req[inside], real[inside])})
    beyond = req > 1.0
    out["extrapolation"] = {**_block(req[beyond], real[beyond]), **_correlations(req[beyond], real[beyond])}
    return out
