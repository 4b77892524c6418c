"""The sampling sweep that chose nph's default sampler (docs/performance.md, "Choosing the sampler").

Mask LDM: :data:`MASK_GRID` (``NPH_SWEEP_GRID=confirm``: :data:`CONFIRM_GRID`) on :data:`CONDITIONS` ×
``NPH_SWEEP_SEEDS`` sampling seeds from ``NPH_SWEEP_FIRST_SEED``; image LDM: contrast error and MS-SSIM
against DDIM-50 images for :data:`IMAGE_GRID`. Cost is counted at thesis size (configs/experiment/thesis.yaml,
flop_counter on meta tensors). Writes sweep.csv, sweep_rows.csv, pareto.png and image_sweep.csv to
``NPH_SWEEP_OUT`` (default: a temporary folder) and prints the chosen default.

Models: ``NPH_SWEEP_MASK_MODELS`` (a models folder with mask_ae/ and mask_dm/; default: experiment=tiny trained
here, as tests/sampling does) and ``NPH_SWEEP_IMAGE_MODELS`` (default: the four tiny bundles of conftest.py).

    nice .venv/bin/pytest benchmarks/test_sampling_sweep.py --benchmark-only -q -s
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from nph.cli.main import main
from nph.data.dataset import LabelledDataset
from nph.sampling.cost import pair_flops, pass_flops
from nph.sampling.defaults import DDIM_50
from nph.sampling.defaults import SamplingSettings as S
from nph.sampling.masks import load_mask_model
from nph.sampling.pairing import load_image_model
from nph.sampling.sweep import image_sweep, mask_sweep, summarise
from nph.sampling.sweep_report import BUDGET_TFLOP, row_of, write_report

THESIS = Path(__file__).resolve().parents[1] / "configs" / "experiment" / "thesis.yaml"
FIRST_SEED = int(os.environ.get("NPH_SWEEP_FIRST_SEED", "0"))
SEEDS = list(range(FIRST_SEED, FIRST_SEED + int(os.environ.get("NPH_SWEEP_SEEDS", "3"))))
#: Requested normalised ventricle fractions: the training range and one extrapolation.
CONDITIONS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2]
MASK_GRID = [
    DDIM_50,
    S("ddim", 50, 1.0),
    *(S("ddim", steps, 3.0) for steps in (10, 15, 20)),
    *(S("dpmpp_2m", steps, 3.0) for steps in (6, 8, 10, 12, 15, 20)),
    *(
        S("dpmpp_2m", steps, 3.0, interval)
        for steps in (10, 12, 15, 20)
        for interval in ((0.1, 1.0), (0.3, 1.0), (0.0, 0.8))
    ),
    *(S("dpmpp_2m", 12, guidance, (0.1, 1.0)) for guidance in (2.0, 4.0)),
]
#: NPH_SWEEP_GRID=confirm: the finalists of the full grid, rerun on new seeds.
CONFIRM_GRID = [
    DDIM_50,
    S("ddim", 10, 3.0),
    *(S("dpmpp_2m", steps, 3.0) for steps in (6, 8, 10)),
    *(S("dpmpp_2m", 10, 3.0, interval) for interval in ((0.0, 0.8), (0.3, 1.0))),
]
IMAGE_GRID = [("ddim", s) for s in (10, 20)] + [("dpmpp_2m", s) for s in (6, 8, 10, 12, 15, 20)]


def thesis_tflop() -> Any:
    """settings → thesis-size TFLOP per pair (the four networks' passes counted once)."""
    experiment = yaml.safe_load(THESIS.read_text())
    passes = pass_flops(experiment)
    return lambda settings: pair_flops(experiment, settings, passes)["total"] / 1e12


@pytest.fixture(scope="module")
def mask_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("NPH_SWEEP_MASK_MODELS"):
        return Path(os.environ["NPH_SWEEP_MASK_MODELS"])
    root = tmp_path_factory.mktemp("mask_ldm")
    assert main(["phantom", f"out={root / 'data'}", "n=24", "seed=0", "experiment=tiny"]) == 0
    for stage in ("mask_ae", "mask_dm"):
        argv = ["train", f"stage={stage}", f"data={root / 'data'}", f"models={root / 'models'}", "experiment=tiny"]
        assert main([*argv, "wandb.mode=disabled"]) == 0
    return root / "models"


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(os.environ.get("NPH_SWEEP_OUT") or tmp_path_factory.mktemp("sweep"))


def test_mask_sampling_sweep(benchmark: Any, mask_models: Path, out: Path, record_figures: Any) -> None:
    """The mask LDM's Pareto table, plot and chosen default."""
    model = load_mask_model(mask_models, torch.device("cpu"))
    tflop = thesis_tflop()
    grid = CONFIRM_GRID if os.environ.get("NPH_SWEEP_GRID") == "confirm" else MASK_GRID
    rows = benchmark.pedantic(lambda: mask_sweep(model, grid, CONDITIONS, SEEDS, tflop), rounds=1, iterations=1)
    summary = summarise(rows)
    chosen = write_report(rows, summary, out)
    reference = row_of(summary, DDIM_50)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(summary.round(3).to_string())
    figures = {
        "out": str(out),
        "reference_tflop": float(reference["tflop_per_pair"]),
        "reference_mae": float(reference["mae"]),
        "reference_defect_share": float(reference["defect_share"]),
        "chosen": "none"
        if chosen is None
        else f"{chosen['sampler']} {chosen['steps']} g{chosen['guidance']} [{chosen['guidance_interval']}]",
        "chosen_tflop": float("nan") if chosen is None else float(chosen["tflop_per_pair"]),
    }
    benchmark.extra_info.update(figures)
    record_figures(figures)
    assert len(rows) == len(grid) * len(SEEDS)
    assert chosen is None or chosen["tflop_per_pair"] <= BUDGET_TFLOP


def test_image_sampling_sweep(benchmark: Any, request: pytest.FixtureRequest, out: Path, record_figures: Any) -> None:
    """The image LDM: contrast error and MS-SSIM against DDIM-50 images, per sampler and steps."""
    given = os.environ.get("NPH_SWEEP_IMAGE_MODELS")
    models = Path(given) if given else request.getfixturevalue("ldm_models")  # trains only when none is given
    model = load_image_model(models, torch.device("cpu"))
    data = LabelledDataset(models.parent / "data")
    labels = np.stack([data.label_contiguous(c).data for c in data.case_ids[:8]])
    table = benchmark.pedantic(
        lambda: pd.concat([image_sweep(model, labels, IMAGE_GRID, seed) for seed in SEEDS]), rounds=1, iterations=1
    )
    table.to_csv(out / "image_sweep.csv", index=False)
    summary = table.groupby(["sampler", "steps"])[["contrast_error", "ms_ssim", "seconds_per_sample"]].agg(
        ["mean", "std"]
    )
    print(summary.round(4).to_string())
    record_figures({"image_sweep": str(out / "image_sweep.csv")})
    assert table["ms_ssim"].between(-1, 1).all() and (table["contrast_error"] >= 0).all()
