"""`nph randomize`: a labelled dataset folder from the CLI, reproducible per seed; bad input exits 2."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segmentation"))
from toy_heads import write_toy_dataset

from nph.data.dataset import LabelledDataset


def test_randomize_cli(run_nph, tmp_path: Path) -> None:
    data = write_toy_dataset(tmp_path / "data", 2, seed=1)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        result = run_nph("randomize", f"data={data}", "n=3", f"out={tmp_path / name}", f"seed={seed}",
                         "experiment=tiny")
        assert result.status == 0, result.err
    a, b, c = (LabelledDataset(tmp_path / n) for n in "abc")
    assert len(a) == 3 and a.info["channel_names"] == {"0": "randomized"}
    assert np.array_equal(a.image("rand000001").data, b.image("rand000001").data)
    assert not np.allclose(a.image("rand000001").data, c.image("rand000001").data)


def test_randomize_bad_input_exit_2(run_nph, tmp_path: Path) -> None:
    masks = write_toy_dataset(tmp_path / "masks", 1, seed=1, images=False)
    result = run_nph("randomize", f"data={tmp_path / 'none'}", "n=2", f"out={tmp_path / 'o'}", "seed=1")
    assert result.status == 2 and "none/dataset.json: missing" in result.err
    result = run_nph("randomize", f"data={masks}", "n=2", f"out={tmp_path / 'o'}", "experiment=tiny")
    assert result.status == 2 and "seed=..." in result.err
    result = run_nph("randomize", f"data={masks}", "n=2", f"out={tmp_path / 'o'}", "seed=1", "experiment=tiny",
                     "elastic_control_points=3")
    assert result.status == 2 and "randomize settings: The number of control points" in result.err
    assert not (tmp_path / "o" / "manifest.csv").exists()
