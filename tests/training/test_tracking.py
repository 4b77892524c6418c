"""W&B tracking offline into tmp_path, deterministic run ids, local_config.yml, and failures that never crash."""

from __future__ import annotations

import time

import numpy as np
from toy_task import ToyTask, toy_config

from nph.training import Engine
from nph.training.tracking import Tracker, read_local_config, run_id_for, three_plane


def test_offline_run_logs_losses_lr_and_images(tmp_path, toy_data):
    class PreviewTask(ToyTask):
        def preview(self, batch):
            return batch["x"][0, 0].cpu().numpy()

    out = tmp_path / "stage"
    run_id = run_id_for("tiny", "toy", out)
    tracker = Tracker(mode="offline", run_id=run_id, directory=tmp_path / "wandb", config={"a": 1}, project="nph-test",
                      environ={})
    assert tracker.active
    Engine(PreviewTask(), toy_data, toy_config(max_steps=4, image_every=2), out, tracker=tracker)()
    runs = list((tmp_path / "wandb" / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(runs) == 1
    keys = (b"train/loss", b"train/lr", b"train/samples_per_s", b"train/grad_norm", b"samples")
    records = b""
    for _ in range(120):  # W&B's service process may still be flushing the offline log that `wandb sync` uploads
        records = (runs[0] / f"run-{run_id}.wandb").read_bytes()
        if all(key in records for key in keys):
            break
        time.sleep(0.25)
    for key in keys:
        assert key in records, key
    images = list(runs[0].rglob("*.png"))
    assert len(images) == 2  # steps 2 and 4


def test_run_id_is_deterministic(tmp_path):
    assert run_id_for("tiny", "mask_ae", tmp_path) == run_id_for("tiny", "mask_ae", tmp_path / ".")
    assert run_id_for("tiny", "mask_ae", tmp_path) != run_id_for("thesis", "mask_ae", tmp_path)
    assert run_id_for("tiny", "mask_ae", tmp_path).startswith("mask_ae-")


def test_environment_mode_wins_and_disabled_is_inert(tmp_path):
    tracker = Tracker(mode="offline", run_id="x", directory=tmp_path, config={}, environ={"WANDB_MODE": "disabled"})
    assert not tracker.active and tracker.mode == "disabled"
    tracker.log({"loss": 1.0}, step=1)  # no run: nothing happens, nothing raises
    tracker.finish()
    assert not tracker.active


def test_unusable_directory_disables_tracking_without_crashing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where W&B wants a folder")
    tracker = Tracker(mode="offline", run_id="y", directory=blocker / "sub", config={}, environ={})
    assert not tracker.active


def test_local_config(tmp_path):
    path = tmp_path / "local_config.yml"
    assert read_local_config(path) == {}
    path.write_text("wandb:\n  project: ventricles\n  entity: lab\n  key: secret\n")
    assert read_local_config(path) == {"project": "ventricles", "entity": "lab"}


def test_three_plane_layout():
    volume = np.zeros((4, 6, 8), dtype=np.float32)
    volume[2, 3, 4] = 2.0
    image = three_plane(volume)
    assert image.dtype == np.uint8
    assert image.shape == (8, 6 + 1 + 4 + 1 + 4 + 1)  # sagittal (Z×Y), coronal (Z×X), axial (Y×X), 1-px gaps
    assert image.max() == 255 and (image == 255).sum() == 3  # the bright voxel appears once in each plane
