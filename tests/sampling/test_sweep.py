"""The sampling sweep at CI size on the session's trained mask LDM and tiny image LDM: the table's shape and sanity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from nph.data.dataset import LabelledDataset
from nph.sampling.cost import pair_flops, pass_flops
from nph.sampling.defaults import DDIM_50
from nph.sampling.defaults import SamplingSettings as S
from nph.sampling.defects import CHECKS
from nph.sampling.masks import load_mask_model
from nph.sampling.pairing import load_image_model
from nph.sampling.sweep import KEYS, image_sweep, mask_sweep, summarise
from nph.sampling.sweep_report import BUDGET_TFLOP, choose, pareto_front, row_of, write_report

pytestmark = pytest.mark.slow
EXPERIMENTS = Path(__file__).resolve().parents[2] / "configs" / "experiment"
GRID = [DDIM_50, S("dpmpp_2m", 10, 3.0), S("dpmpp_2m", 10, 3.0, (0.1, 1.0)), S("ddim", 10, 1.0)]
CONDITIONS = [0.0, 0.33, 0.67, 1.0]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def thesis_passes() -> tuple[dict, dict]:
    experiment = yaml.safe_load((EXPERIMENTS / "thesis.yaml").read_text())
    return experiment, pass_flops(experiment)


def test_mask_sweep_table(mask_models, thesis_passes, tmp_path):
    experiment, passes = thesis_passes
    model = load_mask_model(mask_models / "models", torch.device("cpu"))
    tflop = {s: pair_flops(experiment, s, passes)["total"] / 1e12 for s in GRID}
    rows = mask_sweep(model, GRID, CONDITIONS, SEEDS, tflop.__getitem__)
    assert len(rows) == len(GRID) * len(SEEDS) and (rows["n"] == len(CONDITIONS)).all()
    shares = rows[[f"{c}_share" for c in CHECKS] + ["defect_share"]]
    assert ((shares >= 0) & (shares <= 1)).all().all()
    assert (rows["defect_share"] >= shares.drop(columns="defect_share").max(axis=1)).all()
    assert (
        rows["pearson_r"].between(-1, 1).all() and (rows["mae"] >= 0).all() and (rows["seconds_per_sample"] > 0).all()
    )
    summary = summarise(rows)
    assert len(summary) == len(GRID) and (summary["seeds"] == len(SEEDS)).all()
    assert list(summary["tflop_per_pair"]) == sorted(summary["tflop_per_pair"])
    reference = row_of(summary, DDIM_50)
    assert reference["tflop_per_pair"] == pytest.approx(309.8, abs=0.5)  # docs/performance.md's count
    assert row_of(summary, GRID[1])["tflop_per_pair"] == pytest.approx(73.1, abs=0.5)
    assert row_of(summary, GRID[2])["tflop_per_pair"] < row_of(summary, GRID[1])["tflop_per_pair"]
    assert reference["pearson_r"] > 0.5  # the trained model follows the request (tests/sampling bar)
    chosen = write_report(rows, summary, tmp_path)
    table = pd.read_csv(tmp_path / "sweep.csv")
    assert set(KEYS) <= set(table.columns) and table["pareto"].any() and table["chosen"].sum() == (chosen is not None)
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(tmp_path / "sweep_rows.csv")) == len(rows)
    assert chosen is None or chosen["tflop_per_pair"] <= BUDGET_TFLOP


def test_the_choice_rule_on_a_made_up_table():
    rows = pd.DataFrame(
        [
            # sampler, steps, guidance, interval, mae, sd, r, defects, tflop
            ("ddim", 50, 3.0, "", 0.10, 0.02, 0.9, 0.10, 309.8),
            ("dpmpp_2m", 10, 3.0, "", 0.115, 0.0, 0.9, 0.10, 73.1),  # within the reference's spread: eligible
            ("dpmpp_2m", 8, 3.0, "", 0.2, 0.0, 0.9, 0.10, 60.0),  # cheaper but worse
            ("dpmpp_2m", 6, 3.0, "0.1-1", 0.05, 0.0, 0.95, 0.0, 40.0),  # best, and cheapest
            ("dpmpp_2m", 30, 3.0, "", 0.05, 0.0, 0.95, 0.0, 200.0),  # over budget
        ],
        columns=[*KEYS, "mae", "mae_sd", "pearson_r", "defect_share", "tflop_per_pair"],
    )
    assert choose(rows)["steps"] == 6
    assert choose(rows.drop(index=3))["steps"] == 10
    assert choose(rows.drop(index=[1, 3])) is None
    assert list(pareto_front(rows)["steps"]) == [6]  # as good or better on cost, error and defects than all others
    with pytest.raises(KeyError, match="no row"):
        row_of(rows.drop(index=0), DDIM_50)


def test_image_sweep_against_ddim_50(ldm_models: Path):
    model = load_image_model(ldm_models, torch.device("cpu"))
    data = LabelledDataset(ldm_models.parent / "data")
    labels = np.stack([data.label_contiguous(c).data for c in data.case_ids[:2]])
    table = image_sweep(model, labels, [("ddim", 50), ("ddim", 5), ("dpmpp_2m", 10)], seed=0)
    assert list(table["steps"]) == [50, 5, 10] and (table["n"] == 2).all()
    same = table.iloc[0]
    assert same["contrast_error"] == pytest.approx(0.0, abs=1e-6) and same["ms_ssim"] == pytest.approx(1.0, abs=1e-4)
    assert (table["contrast_error"].iloc[1:] >= 0).all() and table["ms_ssim"].iloc[1:].between(-1, 1).all()
