"""Bland–Altman agreement of a method's measurements with the reference's: bias, limits, their CIs, proportional bias.

Per Bland & Altman (1986, Lancet; 1999, Stat Methods Med Res), over the n cases where both values are finite:
differences d = method − reference, bias = mean(d), s = SD(d) (ddof 1), limits of agreement bias ± 1.96 s.
95 % CIs use Student's t with n − 1 degrees of freedom: bias ± t·s/√n, and each limit ± t·s·√(3/n) (the
approximate standard error of a limit, Bland & Altman 1986). Proportional bias is tested by the least-squares
regression of d on the pair means (reference + method)/2 (Bland & Altman 1999, section 3.2): slope, its 95 % CI
(t with n − 2 degrees of freedom) and the two-sided p-value of slope = 0; ``proportional_bias`` is p < 0.05.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["BLAND_ALTMAN_KEYS", "bland_altman"]

#: Every key of :func:`bland_altman`'s result (None where too few cases define it).
BLAND_ALTMAN_KEYS = (
    "n", "bias", "sd", "bias_ci_low", "bias_ci_high", "loa_low", "loa_high", "loa_low_ci_low", "loa_low_ci_high",
    "loa_high_ci_low", "loa_high_ci_high", "slope", "slope_ci_low", "slope_ci_high", "intercept", "slope_p",
    "proportional_bias",
)  # fmt: skip
Z_LOA = 1.96
ALPHA = 0.05


def bland_altman(reference: npt.NDArray, predicted: npt.NDArray) -> dict[str, float | int | bool | None]:
    """Bland–Altman statistics of paired measurements (module docstring); NaN pairs are left out."""
    ref, pred = np.asarray(reference, np.float64), np.asarray(predicted, np.float64)
    keep = np.isfinite(ref) & np.isfinite(pred)
    diff, mean = pred[keep] - ref[keep], (pred[keep] + ref[keep]) / 2.0
    out: dict[str, float | int | bool | None] = dict.fromkeys(BLAND_ALTMAN_KEYS)
    out["n"] = int(diff.size)
    if diff.size:
        out["bias"] = float(diff.mean())
    if diff.size >= 2:
        out |= _limits(diff)
    if diff.size >= 3:
        out |= _proportional(mean, diff)
    return out


def _limits(diff: npt.NDArray[np.float64]) -> dict[str, float]:
    n, bias, sd = diff.size, float(diff.mean()), float(diff.std(ddof=1))
    t = float(stats.t.ppf(1.0 - ALPHA / 2.0, n - 1))
    se_bias, se_limit = sd / math.sqrt(n), sd * math.sqrt(3.0 / n)
    low, high = bias - Z_LOA * sd, bias + Z_LOA * sd
    return {
        "sd": sd, "bias_ci_low": bias - t * se_bias, "bias_ci_high": bias + t * se_bias,
        "loa_low": low, "loa_high": high, "loa_low_ci_low": low - t * se_limit, "loa_low_ci_high": low + t * se_limit,
        "loa_high_ci_low": high - t * se_limit, "loa_high_ci_high": high + t * se_limit,
    }  # fmt: skip


def _proportional(mean: npt.NDArray[np.float64], diff: npt.NDArray[np.float64]) -> dict[str, float | bool]:
    """Regression of the differences on the means; nothing when the means do not vary (no slope exists)."""
    if np.ptp(mean) == 0:
        return {}
    fit = stats.linregress(mean, diff)
    t = float(stats.t.ppf(1.0 - ALPHA / 2.0, diff.size - 2))
    slope, se, p_value = float(fit.slope), float(fit.stderr), float(fit.pvalue)
    if not math.isfinite(p_value):  # a perfect fit: certain when the line slopes, none when it is flat
        p_value = 0.0 if slope != 0 else 1.0
    return {
        "slope": slope, "slope_ci_low": slope - t * se, "slope_ci_high": slope + t * se,
        "intercept": float(fit.intercept), "slope_p": p_value, "proportional_bias": bool(p_value < ALPHA),
    }  # fmt: skip
