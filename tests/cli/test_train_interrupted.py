"""`nph train` stopped by SIGUSR2/SIGTERM exits 75, not 0: a scheduler's afterok must not release the next stage."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from nph.training.engine import Engine


def test_interrupted_training_exits_75_with_a_checkpoint_and_no_bundle(
    run_nph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, models = tmp_path / "phantoms", tmp_path / "models"
    assert run_nph("phantom", f"out={data}", "n=6", "seed=0", "experiment=tiny").status == 0
    after_step = Engine._after_step

    def stop_after_first_step(self: Engine, logs: dict[str, float], rate: float) -> None:
        after_step(self, logs, rate)
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGUSR2)  # as SLURM sends it before a time limit

    monkeypatch.setattr(Engine, "_after_step", stop_after_first_step)
    result = run_nph("train", "stage=mask_ae", f"data={data}", f"models={models}", "experiment=tiny",
                     "wandb.mode=disabled")
    assert result.status == 75, result.err
    assert "mask_ae stopped at step 1 of" in result.err and "run the same command again to resume" in result.err
    assert (models / "mask_ae" / "training" / "checkpoint.pt").is_file()
    assert not (models / "mask_ae" / "meta.json").exists()  # no bundle: the stage is not done
