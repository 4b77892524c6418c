"""The report's headline table: means with 95 % CIs and the paired test, LDM − other, from summary.json."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from nph.evaluation.comparison import CAVEAT, headline_html, headline_markdown, headline_rows
from nph.evaluation.schemes import WHOLE
from nph.evaluation.stats import METRICS, summarize

DICE = {"synthetic": [0.80, 0.82, 0.78, 0.85, 0.79, 0.81], "samseg": [0.70, 0.75, 0.69, 0.72, 0.74, 0.71],
        "randomized": [0.60, 0.65, 0.61, 0.58, 0.66, 0.59]}  # fmt: skip


def _per_case() -> pd.DataFrame:
    rows = []
    for method, dice in DICE.items():
        for i, d in enumerate(dice):
            row = {"structure": WHOLE, "method": method, "case_id": f"c{i}", "reference_ml": 50.0,
                   "predicted_ml": 50.0 + 10 * (1 - d), "evans_reference": 0.35,
                   "evans_predicted": 0.35 - 0.1 * (1 - d), "flag": ""}  # fmt: skip
            row.update({m: float(1 - d) * 10 for m in METRICS})
            row["dice"] = d
            rows.append(row)
    return pd.DataFrame(rows)


def test_headline_numbers() -> None:
    summary = summarize(_per_case(), baseline="synthetic", n_boot=500, seed=0)
    rows = headline_rows(summary)
    assert [r[0] for r in rows] == ["LDM-trained nnU-Net vs SAMSEG"] * 3 + ["LDM data vs randomised data"] * 3
    dice_vs_samseg = rows[0]
    assert dice_vs_samseg[1] == "Dice" and dice_vs_samseg[2] == "6"
    ldm = np.asarray(DICE["synthetic"])
    half = stats.t.ppf(0.975, 5) * ldm.std(ddof=1) / math.sqrt(6)
    assert dice_vs_samseg[3] == f"{ldm.mean():.3g} [{ldm.mean() - half:.3g}, {ldm.mean() + half:.3g}]"
    diff = ldm - np.asarray(DICE["samseg"])
    assert dice_vs_samseg[5].startswith(f"{diff.mean():.3g} [")  # LDM − other: positive, LDM is better
    low, high = (float(x) for x in dice_vs_samseg[5].split("[")[1].rstrip("]").split(","))
    assert 0 < low <= diff.mean() <= high
    assert dice_vs_samseg[6] == f"{stats.wilcoxon(diff).pvalue:.3g}"
    html, md = headline_html(summary), headline_markdown(summary)
    assert "id='headline'" in html and CAVEAT in html and "LDM data vs randomised data" in md and CAVEAT in md


def test_headline_needs_both_methods_and_ldm_baseline() -> None:
    per_case = _per_case()
    summary = summarize(per_case[per_case["method"] != "samseg"], baseline="synthetic", n_boot=100, seed=0)
    assert {r[0] for r in headline_rows(summary)} == {"LDM data vs randomised data"}
    summary = summarize(per_case, baseline="samseg", n_boot=100, seed=0)
    assert all(r[5].startswith("n/a") for r in headline_rows(summary))
    only = per_case[per_case["method"] == "synthetic"]
    assert headline_html(summarize(only, baseline=None, n_boot=100, seed=0)) == ""
