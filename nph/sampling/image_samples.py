"""``nph sample-images``: images for the label maps of any labelled dataset folder → a new labelled dataset folder.

Case ``i`` (in the masks' manifest order) gets noise seed ``sample_seed(seed, i)``; its row records the seed,
the index, the source mask case and the image model's bundle digests. When the masks come with real images
(phantoms, ingested scans), the mask–image consistency against them is stored in dataset.json. Masks are read as
RAS+ arrays; a model trained on another layout (``nph import-thesis``) paints them turned into its own (exact axis
permutations and flips), and its images come back RAS+.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from nph import __version__
from nph.data.dataset import DatasetPaths, LabelledDataset, finalize, write_case
from nph.data.labels import contiguous_to_ids
from nph.data.orientation import RAS, reorient_axes
from nph.errors import InputError
from nph.progress import progress
from nph.sampling.pairing import ImageModel, consistency_report, load_image_model, paint_images
from nph.seeds import sample_seed
from nph.synthesis.writer import BackgroundWriter

__all__ = ["sample_images"]

log = logging.getLogger(__name__)
#: At most this many generated/real pairs enter the consistency report (it holds images in memory).
QUALITY_CASES = 16


def _check_out(masks: Path, out: Path, overwrite: bool) -> None:
    if out.resolve() == masks.resolve():
        raise InputError(f"out={out}: must differ from masks= (the mask dataset is never modified)")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"out={out}: folder exists and is not empty (choose another or pass overwrite=true)")


def _check_grid(model: ImageModel, dataset: LabelledDataset, case_id: str) -> None:
    """Masks are read as RAS+ arrays; the model's grid is compared in that axis order (its own may differ)."""
    volume = dataset.label_contiguous(case_id)
    layout = "" if model.orientation == RAS else f" (its {model.orientation} grid as RAS+ arrays)"
    if model.shape is not None:
        shape = reorient_axes(model.shape, model.orientation, RAS)
        if tuple(volume.shape) != shape:
            raise InputError(
                f"{dataset.paths.label(case_id)}: grid {tuple(volume.shape)} differs from the image "
                f"model's {list(shape)}{layout}"
            )
    if model.spacing is not None:
        spacing = reorient_axes(model.spacing, model.orientation, RAS)
        if not np.allclose(volume.spacing, spacing, atol=1e-3):
            raise InputError(
                f"{dataset.paths.label(case_id)}: spacing {volume.spacing} mm differs from the image "
                f"model's {list(spacing)} mm{layout}"
            )


def sample_images(
    models: str | Path,
    masks: str | Path,
    out: str | Path,
    *,
    seed: int,
    sampler: str = "ddim",
    steps: int = 50,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
) -> pd.DataFrame:
    """Paint an image onto every label map of ``masks`` and write ``out``; returns the manifest.

    Raises:
        InputError: bad bundles, masks on another grid, or an ``out`` that would be damaged.
    """
    masks, out = Path(masks), Path(out)
    dataset = LabelledDataset(masks)
    _check_out(masks, out, overwrite)
    model = load_image_model(models, device)
    for case_id in dataset.case_ids:
        _check_grid(model, dataset, case_id)
    paths = DatasetPaths(out)
    rows: list[dict[str, Any]] = []
    quality: dict[str, list[np.ndarray]] = {"generated": [], "labels": [], "real": []}
    provenance = {
        "source": "sample-images",
        "seed": int(seed),
        "sampler": sampler,
        "steps": int(steps),
        "image_ae": model.digests["image_ae"],
        "image_dm": model.digests["image_dm"],
        "nph_version": __version__,
    }
    case_ids, start = dataset.case_ids, time.perf_counter()
    with BackgroundWriter() as writer, progress(total=len(case_ids), unit="image", desc="sample-images") as bar:
        for first in range(0, len(case_ids), batch_size):
            indices = list(range(first, min(first + batch_size, len(case_ids))))
            volumes = [dataset.label_contiguous(case_ids[i]) for i in indices]
            labels = np.stack([v.data for v in volumes])
            images = paint_images(
                model,
                labels,
                [sample_seed(seed, i) for i in indices],
                sampler=sampler,
                steps=steps,
                batch_size=batch_size,
                orientation=RAS,
            )
            for i, volume, image in zip(indices, volumes, images, strict=True):
                label_ids = contiguous_to_ids(volume.data)
                image = np.where(label_ids == 0, 0.0, image).astype(np.float32)
                row = {**provenance, "index": i, "source_case": case_ids[i], "noise_seed": sample_seed(seed, i)}
                rows.append(row)
                writer.submit(_write, paths, f"sample_{i:06d}", label_ids, volume.affine, image, row)
                _collect(quality, dataset, case_ids[i], image, volume.data)
            bar.update(len(indices))
            bar.set_postfix(samples_per_s=f"{bar.n / max(time.perf_counter() - start, 1e-9):.2f}")
    report = _report(quality)
    log.info("sample-images: %d images in %.1f s; quality %s", len(rows), time.perf_counter() - start, report)
    written: list[dict[str, Any]] = [row["written"] for row in rows]
    return finalize(
        paths,
        written,
        description=f"nph sample-images (seed {seed})",
        extra={"image_quality": report, "image_model": model.digests, "masks": str(masks)},
    )


def _write(
    paths: DatasetPaths, case_id: str, label_ids: np.ndarray, affine: np.ndarray, image: np.ndarray, row: dict[str, Any]
) -> None:
    row["written"] = write_case(paths, case_id, label_ids, affine, image, dict(row))


def _collect(
    quality: dict[str, list[np.ndarray]], dataset: LabelledDataset, case_id: str, image: np.ndarray, labels: np.ndarray
) -> None:
    if len(quality["generated"]) >= QUALITY_CASES:
        return
    quality["generated"].append(image)
    quality["labels"].append(labels)
    if dataset.has_images:
        quality["real"].append(dataset.image(case_id).data)


def _report(quality: dict[str, list[np.ndarray]]) -> dict[str, float]:
    real = np.stack(quality["real"]) if quality["real"] else None
    return consistency_report(np.stack(quality["generated"]), np.stack(quality["labels"]), real)
