"""SynthSeg-style randomised images (deformation, GMM intensities, bias, resolution, noise) from a dataset's labels.

`nph randomize data=DIR n=N out=DIR seed=S` writes a labelled dataset folder with provenance per case
(source=randomize, seed, index, source case); the benchmark's "domain randomisation" baseline.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

__all__ = ["run"]


def run(cfg: DictConfig) -> None:
    """Read the settings and write the randomised dataset (torch/TorchIO imported here: `nph --help` stays fast)."""
    from nph.segmentation.randomize import randomize_dataset, settings_from

    settings = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(settings, dict)
    randomize_dataset(Path(cfg.data).expanduser(), Path(cfg.out).expanduser(), int(cfg.n), int(cfg.seed),
                      settings_from({str(k): v for k, v in settings.items()}), modality=str(cfg.modality))
