"""nnU-Net training resumes (``--c``) when its fold already holds a checkpoint, so a requeued job continues."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nph.errors import InputError
from nph.segmentation.nnunet_run import resume_training, train_command

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "nnunet.yaml"


@pytest.mark.parametrize(
    ("files", "resume", "expected"),
    [
        ([], "auto", False),  # first attempt: a fresh start
        (["checkpoint_latest.pth"], "auto", True),  # requeued mid-training: continue from the last save
        (["checkpoint_final.pth", "checkpoint_best.pth"], "auto", True),
        (["checkpoint_best.pth"], "auto", True),  # nnU-Net's --c falls back to best
        (["progress.png", "debug.json"], "auto", False),  # a log without a checkpoint: nothing to continue
        (["checkpoint_latest.pth"], False, False),  # asked for a fresh start
        ([], True, True),
    ],
)
def test_resume_follows_the_checkpoints(tmp_path: Path, files: list[str], resume: bool | str, expected: bool) -> None:
    for name in files:
        (tmp_path / name).write_bytes(b"")
    assert resume_training(tmp_path, resume) is expected
    cmd = train_command(5, "3d_fullres", "0", "T", "nnUNetPlans", "cuda", resume_training(tmp_path, resume))
    assert ("--c" in cmd) is expected


def test_bad_resume_value_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"resume='sometimes': must be auto .* true or false"):
        resume_training(tmp_path, "sometimes")


def test_defaults_resume_and_do_not_compile() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["resume"] == "auto"
    assert config["compile"] is False  # the image has no compiler or Python headers for Inductor/Triton
