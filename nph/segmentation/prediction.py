"""The prediction folder (DESIGN.md): ``DIR/<case>.nii.gz`` label maps in the reference images' geometry,
plus ``DIR/labels.json`` (written by :func:`nph.evaluation.schemes.write_prediction_folder_labels`).
Shared by the nnU-Net and SynthSeg runners.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nph.data.dataset import CHANNEL_SUFFIX, FILE_ENDING, image_cases
from nph.io.nifti import Volume, load_volume, save_volume

__all__ = ["find_images", "save_prediction", "stage_inputs"]

def find_images(input_dir: Path) -> dict[str, Path]:
    """``{case: image}`` of a labelled dataset (imagesTr/), an image-only folder from ``nph ingest`` (imagesTs/)
    or a folder of NIfTI images: :func:`nph.data.dataset.image_cases`."""
    return image_cases(input_dir)


def stage_inputs(images: Mapping[str, Path], staging: Path, suffix: str = CHANNEL_SUFFIX + FILE_ENDING) -> None:
    """Link every image into ``staging`` as ``<case><suffix>`` (the name a segmenter expects)."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for case, path in images.items():
        target = staging / f"{case}{suffix}"
        if path.name.endswith(".nii") and suffix.endswith(".gz"):
            volume = load_volume(path)
            save_volume(target, volume.data, volume.affine)
            continue
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)


def save_prediction(out_dir: Path, case: str, labels: npt.NDArray[np.integer], reference: Volume,
                    *, source: Path) -> Path:
    """Write one predicted label map, refusing a grid that is not the reference image's."""
    if labels.shape != reference.shape:
        raise RuntimeError(f"{source}: prediction shape {labels.shape} differs from the reference {reference.shape}")
    return save_volume(out_dir / f"{case}{FILE_ENDING}", np.asarray(labels).astype(np.int16), reference.affine)

