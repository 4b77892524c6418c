"""`make demo` end to end at an even smaller size: phantoms → four LDMs → generate → three nnU-Nets → report.

The same Makefile chain a user runs, with fewer cases, a 16×24×16 grid and a few training steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_ldm import GRID, STAGES

from nph.data.dataset import LabelledDataset
from nph.evaluation.curves import read_curve
from nph.evaluation.schemes import WHOLE

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STEPS = [
    o.replace("max_steps=30", "max_steps=10").replace("max_steps=20", "max_steps=10")
    for overrides in STAGES.values()
    for o in overrides
]


def _make_demo(demo: Path) -> subprocess.CompletedProcess[str]:
    overrides = " ".join([*GRID[1:], *STEPS])
    argv = [
        "make",
        "--no-print-directory",
        "demo",
        f"DEMO_DIR={demo}",
        "DEMO_TRAIN_CASES=8",
        "DEMO_TEST_CASES=3",
        "DEMO_SYNTHETIC=6",
        "DEMO_SHARDS=2",
        "DEMO_GENERATE_ARGS=steps=5",
        # 10 training steps make masks with few or no ventricles: all 33 classes keep nnU-Net's foreground
        "DEMO_SCHEME=all33",
        f"DEMO_OVERRIDES={overrides}",
        "DEMO_NNUNET_BUDGET=nnunet.epochs=1 nnunet.iterations=2 nnunet.val_iterations=1",
        # SAMSEG runs for real in tests/segmentation/test_samseg.py; a 10 mm grid is below what it handles
        "DEMO_BASELINES=",
        f"BIN={Path(sys.executable).parent}",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800, check=False)


def test_make_demo_produces_a_real_report_and_resumes(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    done = _make_demo(demo)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"demo report: {demo / 'benchmark' / 'report.html'}" in done.stdout
    for stage in ("mask_ae", "mask_dm", "image_ae", "image_dm"):
        assert json.loads((demo / "models" / stage / "meta.json").read_text())["kind"] == stage
    synthetic = LabelledDataset(demo / "synthetic")
    assert len(synthetic) == 6 and synthetic.has_images
    assert (synthetic.manifest["source"] == "generate").all()
    per_case = pd.read_csv(demo / "benchmark" / "per_case.csv")
    assert set(per_case["method"]) == {"synthetic", "randomized", "real"}
    whole = per_case[per_case["structure"] == WHOLE]
    assert len(whole) == 3 * 3 and whole["dice"].between(0.0, 1.0).all()
    # the reference volumes are the held-out phantoms' own, measured independently here
    reference = LabelledDataset(demo / "test").manifest.set_index("case_id")["ventricle_ml"]
    for _, row in whole.iterrows():
        assert row["reference_ml"] == pytest.approx(reference[row["case_id"]], rel=1e-6)
    summary = json.loads((demo / "benchmark" / "summary.json").read_text())
    assert set(summary["methods"]) >= {"synthetic", "randomized", "real"} and summary["baseline"] == "synthetic"
    for method in ("synthetic", "randomized", "real"):  # each nnU-Net's record: 1 epoch, a finite loss
        curve = read_curve(demo / f"pred_{method}")
        assert curve is not None and curve["epoch"].tolist() == [0], method
        assert np.isfinite(curve[["train_loss", "val_loss"]].to_numpy()).all(), (method, curve)
        assert summary["training"][method]["epochs"] == 1 and not summary["training"][method]["non_finite_loss_epochs"]
    plans = json.loads((demo / "nnunet" / "nnUNet_preprocessed" / "Dataset503_real" / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"][0] == 8
    train_log = next((demo / "nnunet" / "logs").glob("train_Dataset503_real_*.log")).read_text()
    assert "torch threads on the CPU: 1 (NPH_NNUNET_THREADS)" in train_log  # DEMO_THREADS, not every core
    applied = json.loads((demo / "pred_real" / "postprocessing.json").read_text())
    assert applied["validation_cases"] >= 1 and all(s["labels"] for s in applied["applied"])
    html = (demo / "benchmark" / "report.html").read_text()
    assert "LDM data vs randomised data" in html and "Toy scale" in html  # the headline, then the caveat
    assert html.count("data:image/png;base64,") >= 3 and "<img alt='learning_curves'" in html
    again = _make_demo(demo)  # everything is up to date: nothing is retrained or regenerated
    assert again.returncode == 0 and "nph train" not in again.stdout and "nnunet train" not in again.stdout
