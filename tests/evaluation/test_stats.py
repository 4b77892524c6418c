"""Statistics against published and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from nph.evaluation.casewise import CaseMaps, score_case
from nph.evaluation.schemes import builtin_scheme
from nph.evaluation.stats import bland_altman, bootstrap_mean_ci, compare_to_baseline, describe, holm, icc, summarize
from nph.io.nifti import Volume

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; ICC(2,1) = 0.29, ICC(3,1) = 0.71.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])


def test_icc_matches_shrout_fleiss() -> None:
    assert icc(SHROUT_FLEISS, "2,1") == pytest.approx(0.29, abs=0.005)
    assert icc(SHROUT_FLEISS, "3,1") == pytest.approx(0.71, abs=0.005)
    volumes = np.array([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]])
    assert icc(volumes) == pytest.approx(1.0)
    biased = volumes + np.array([0.0, 5.0])  # constant offset: consistency stays 1, agreement drops
    assert icc(biased, "3,1") == pytest.approx(1.0) and icc(biased, "2,1") < 0.9


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, float("nan"), 0.01]) == pytest.approx([0.5, float("nan"), 0.02], nan_ok=True)


def test_bland_altman_and_describe() -> None:
    ba = bland_altman(np.array([10.0, 20.0, 30.0, 40.0]), np.array([12.0, 21.0, 33.0, 42.0]))
    sd = np.std([2.0, 1.0, 3.0, 2.0], ddof=1)
    assert ba["bias"] == pytest.approx(2.0) and ba["loa_high"] == pytest.approx(2.0 + 1.96 * sd)
    d = describe([1.0, 2.0, 3.0, 4.0, float("nan")])
    assert (d["n"], d["n_nan"], d["mean"], d["median"], d["q1"], d["q3"]) == (4, 1, 2.5, 2.5, 1.75, 3.25)
    assert describe([float("nan")])["mean"] is None


def test_bland_altman_against_a_hand_computation() -> None:
    """Differences 2, 1, 3, 2, 5 at means 11, 20.5, 31.5, 41, 52.5 (computed here from the definitions)."""
    ba = bland_altman(np.array([10.0, 20.0, 30.0, 40.0, 50.0, np.nan]), np.array([12.0, 21.0, 33.0, 42.0, 55.0, 1.0]))
    assert ba["n"] == 5 and ba["bias"] == pytest.approx(2.6)
    sd = math.sqrt((0.6**2 + 1.6**2 + 0.4**2 + 0.6**2 + 2.4**2) / 4)  # 1.5166
    t4 = 2.7764451  # Student's t, 4 degrees of freedom, 97.5th percentile (tables)
    assert ba["sd"] == pytest.approx(sd)
    assert (ba["bias_ci_low"], ba["bias_ci_high"]) == pytest.approx(
        (2.6 - t4 * sd / math.sqrt(5), 2.6 + t4 * sd / math.sqrt(5))
    )
    assert (ba["loa_low"], ba["loa_high"]) == pytest.approx((2.6 - 1.96 * sd, 2.6 + 1.96 * sd))  # -0.373, 5.573
    half = t4 * sd * math.sqrt(3 / 5)  # 3.262
    assert (ba["loa_high_ci_low"], ba["loa_high_ci_high"]) == pytest.approx(
        (2.6 + 1.96 * sd - half, 2.6 + 1.96 * sd + half)
    )
    assert (ba["loa_low_ci_low"], ba["loa_low_ci_high"]) == pytest.approx(
        (2.6 - 1.96 * sd - half, 2.6 - 1.96 * sd + half)
    )
    means, diffs = np.array([11.0, 20.5, 31.5, 41.0, 52.5]), np.array([2.0, 1.0, 3.0, 2.0, 5.0])
    sxx = ((means - means.mean()) ** 2).sum()
    slope = ((means - means.mean()) * (diffs - 2.6)).sum() / sxx
    residual = diffs - (2.6 + slope * (means - means.mean()))
    se = math.sqrt((residual**2).sum() / 3 / sxx)
    t3 = 3.1824463  # 3 degrees of freedom
    assert ba["slope"] == pytest.approx(slope) and ba["intercept"] == pytest.approx(2.6 - slope * means.mean())
    assert (ba["slope_ci_low"], ba["slope_ci_high"]) == pytest.approx((slope - t3 * se, slope + t3 * se))
    assert ba["slope_p"] == pytest.approx(2 * scipy_stats.t.sf(abs(slope / se), 3))
    assert ba["proportional_bias"] is (ba["slope_p"] < 0.05)


def test_proportional_bias_is_found_and_too_few_cases_give_none() -> None:
    reference = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    scaled = reference * 1.2 + np.array([0.3, -0.2, 0.1, -0.3, 0.2, -0.1])  # 20 % too large: grows with size
    ba = bland_altman(reference, scaled)
    assert ba["proportional_bias"] and ba["slope"] == pytest.approx(0.2 / 1.1, abs=0.01) and ba["slope_p"] < 1e-4
    offset = bland_altman(reference, reference + np.array([1.0, 2.0, 1.0, 2.0, 1.0, 2.0]))
    assert not offset["proportional_bias"] and offset["bias"] == pytest.approx(1.5)
    two = bland_altman(np.array([1.0, 2.0]), np.array([1.5, 2.5]))
    assert two["loa_high"] == pytest.approx(0.5) and two["slope"] is None and two["proportional_bias"] is None
    assert bland_altman(np.array([np.nan]), np.array([1.0]))["bias"] is None


def test_bootstrap_ci_is_seeded_and_covers_the_mean() -> None:
    diff = np.random.default_rng(np.random.SeedSequence(1)).normal(0.3, 1.0, size=40)
    low, high = bootstrap_mean_ci(diff, n_boot=2000, seed=7)
    assert low < diff.mean() < high
    assert (low, high) == bootstrap_mean_ci(diff, n_boot=2000, seed=7)
    assert (low, high) != bootstrap_mean_ci(diff, n_boot=2000, seed=8)
    assert high - low == pytest.approx(2 * 1.96 * diff.std(ddof=1) / math.sqrt(40), rel=0.15)


def _table(better: list[float], base: list[float]) -> pd.DataFrame:
    rows = []
    for method, values in (("ours", better), ("synthseg", base)):
        for i, v in enumerate(values):
            rows.append(
                {
                    "case_id": f"c{i}",
                    "method": method,
                    "structure": "ventricles",
                    "dice": v,
                    "hd95_mm": 1.0,
                    "assd_mm": 1.0,
                    "nsd": 1.0,
                    "abs_volume_error_ml": 1.0 - v,
                    "rel_volume_error_pct": 0.0,
                    "abs_evans_error": 0.0,
                    "evans_reference": 0.3,
                    "evans_predicted": 0.3,
                    "reference_ml": 10.0 + i,
                    "predicted_ml": 10.0 + i * v,
                    "flag": "missing" if math.isnan(v) else "",
                }
            )
    return pd.DataFrame(rows)


def test_wilcoxon_against_baseline_exact_p_and_holm() -> None:
    ours = [0.9, 0.91, 0.92, 0.93, 0.94, 0.95]
    base = [0.8, 0.805, 0.81, 0.815, 0.82, 0.79]
    rows = compare_to_baseline(_table(ours, base), "synthseg", n_boot=500, seed=0)
    dice_row = next(r for r in rows if r["metric"] == "dice")
    assert dice_row["n_pairs"] == 6 and dice_row["p_value"] == pytest.approx(2 / 2**6)  # all 6 positive: exact p
    assert dice_row["p_holm"] == pytest.approx(dice_row["p_value"])  # one method: a family of one test
    assert dice_row["mean_difference"] == pytest.approx(np.mean(np.subtract(ours, base)))
    assert dice_row["ci_low"] > 0 and dice_row["significant"]
    hd_row = next(r for r in rows if r["metric"] == "hd95_mm")
    assert hd_row["p_value"] == 1.0 and not hd_row["significant"]  # identical values


def test_summary_counts_missing_and_leaves_nan_out() -> None:
    table = _table([0.9, float("nan"), 0.92, 0.93], [0.8, 0.81, 0.82, 0.83])
    summary = summarize(table, baseline="synthseg", n_boot=100, seed=0)
    ours = summary["structures"]["ventricles"]["ours"]
    assert ours["n_missing"] == 1 and ours["metrics"]["dice"]["n"] == 3 and ours["metrics"]["dice"]["n_nan"] == 1
    assert ours["metrics"]["dice"]["mean"] == pytest.approx(np.mean([0.9, 0.92, 0.93]))
    assert next(c for c in summary["comparisons"] if c["metric"] == "dice")["n_pairs"] == 3


def test_a_method_that_finds_nothing_ranks_below_a_slightly_wrong_one() -> None:
    """'empty' is exact in three cases and finds nothing in the fourth; 'shifted' is one voxel off everywhere.
    With the worst case in the means, 'empty' is the worse method by HD95 and ASSD, and the test sees all pairs."""
    shape, spacing = (20, 24, 16), (1.0, 1.0, 2.0)
    affine = np.diag([*spacing, 1.0])
    binary = builtin_scheme("binary")
    rows = []
    for case in range(4):
        ref = np.zeros(shape, np.uint8)
        ref[5 : 12 + case, 6:14, 4:10] = 1
        shifted = np.roll(ref, 1, axis=0)
        empty = np.zeros_like(ref) if case == 3 else ref
        for method, pred in (("shifted", shifted), ("empty", empty)):
            rows += score_case(
                f"c{case}", method, Volume(ref, affine), binary, CaseMaps(pred, []), binary, tolerance_mm=1.0
            )
    table = pd.DataFrame(rows)
    diagonal = math.sqrt(20**2 + 24**2 + 32**2)
    assert table.loc[table.method == "empty", "hd95_mm"].tolist() == pytest.approx([0, 0, 0, diagonal])
    assert table.loc[table.method == "shifted", "hd95_mm"].tolist() == pytest.approx([1.0] * 4)
    summary = summarize(table, baseline="shifted", n_boot=200, seed=0)
    metrics = {m: summary["structures"]["ventricles"][m]["metrics"] for m in ("empty", "shifted")}
    for metric in ("hd95_mm", "assd_mm"):
        assert metrics["empty"][metric]["n"] == 4 and metrics["empty"][metric]["n_nan"] == 0
        assert metrics["empty"][metric]["mean"] > metrics["shifted"][metric]["mean"]
    assert metrics["empty"]["hd95_mm"]["mean"] == pytest.approx(diagonal / 4)
    hd_test = next(c for c in summary["comparisons"] if c["metric"] == "hd95_mm")
    assert hd_test["n_pairs"] == 4 and hd_test["mean_difference"] == pytest.approx(diagonal / 4 - 1.0)
