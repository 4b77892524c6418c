"""NPH phantoms: synthetic labelled heads with a chosen ventricle enlargement, so every stage can be tested
without private data. :func:`make_phantom` makes one; :func:`write_phantom_dataset` writes a labelled
dataset folder of them (DESIGN.md), case ``i`` drawn from ``SeedSequence([seed, i])`` whatever ``n`` is.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nph.data.dataset import FILE_ENDING, DatasetPaths, finalize, write_case
from nph.data.phantom_anatomy import Coords, make_labels, smooth_field
from nph.data.phantom_contrast import Contrast, paint_image
from nph.errors import InputError
from nph.io.atomic import TEMP_PREFIX
from nph.progress import progress

__all__ = ["Phantom", "case_draws", "grid_affine", "make_phantom", "write_phantom_dataset"]

log = logging.getLogger(__name__)

THESIS_SHAPE = (96, 128, 96)
THESIS_SPACING = (1.667, 1.75, 1.667)
CASE_PREFIX = "phantom_"
LAUNCH_RECORDS = "launch"  # python -m launch keeps its job records in <out>/launch/
WARP_MM = 2.5  # amplitude of the smooth per-case displacement
HEAD_SIZE_SD = 0.04  # per-axis log-normal head size variation
VENTRICLE_SCALE = 1.23  # baseline ventricle size (linear) relative to the template's
VENTRICLE_SCALE_SD = 0.035


@dataclass
class Phantom:
    """One synthetic head: SynthSeg-id label map and image on the same RAS+ grid."""

    label_ids: npt.NDArray[np.int16]  # (X, Y, Z) SynthSeg ids
    image: npt.NDArray[np.float32]  # (X, Y, Z) in [0, 1], 0 outside the head
    affine: npt.NDArray[np.float64]  # 4x4, diag(spacing), origin at the grid centre
    enlargement: float


def grid_affine(shape: Sequence[int], spacing: Sequence[float]) -> npt.NDArray[np.float64]:
    """RAS+ affine with ``spacing`` on the diagonal whose world origin is the centre of the grid."""
    affine = np.diag([*map(float, spacing), 1.0])
    affine[:3, 3] = -np.asarray(spacing, dtype=np.float64) * (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0
    return affine


def _check_grid(
    shape: Sequence[Any], spacing: Sequence[Any]
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Three positive integer sizes and three positive finite spacings, or :class:`InputError`."""
    shape, spacing = list(shape), list(spacing)
    if len(shape) != 3 or any(isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1 for s in shape):
        raise InputError(f"shape: expected three positive integers (voxels), got {shape}")
    if len(spacing) != 3 or any(
        isinstance(s, bool) or not isinstance(s, int | float | np.number) or not np.isfinite(s) or s <= 0
        for s in spacing
    ):
        raise InputError(f"spacing: expected three positive sizes in mm, got {spacing}")
    return (int(shape[0]), int(shape[1]), int(shape[2])), (float(spacing[0]), float(spacing[1]), float(spacing[2]))


def _check_contrast(contrast: str) -> Contrast:
    try:
        return Contrast(contrast)
    except ValueError:
        raise InputError(f"contrast: unknown contrast {contrast!r} (known: {[c.value for c in Contrast]})") from None


def _check_seed(seed: Any, key: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"{key}: expected a non-negative integer, got {seed!r}")
    return int(seed)


def _subject_coords(rng: np.random.Generator, shape: tuple[int, int, int], affine: npt.NDArray[np.float64]) -> Coords:
    """Template-space mm of every voxel: world mm divided by the subject's head size, plus a smooth warp."""
    size = np.exp(rng.normal(0.0, HEAD_SIZE_SD, 3))
    control = tuple(min(c, s) for c, s in zip((5, 6, 5), shape, strict=True))
    axes = [(affine[i, i] * np.arange(shape[i]) + affine[i, 3]) / size[i] for i in range(3)]
    grids = np.meshgrid(*[a.astype(np.float32) for a in axes], indexing="ij")
    x, y, z = (g + np.float32(WARP_MM) * smooth_field(rng, shape, control) for g in grids)
    return x, y, z


def make_phantom(
    seed: int,
    *,
    shape: Sequence[int] = THESIS_SHAPE,
    spacing: Sequence[float] = THESIS_SPACING,
    enlargement: float = 0.0,
    contrast: str = "flair",
) -> Phantom:
    """One phantom head. The same ``seed`` gives the same subject at every ``enlargement`` and contrast.

    Args:
        seed: non-negative integer; anatomy and image draws come from ``SeedSequence(seed)``'s two children.
        shape: grid size in voxels (R, A, S).
        spacing: voxel size in mm; the head is ~160×224×160 mm whatever the grid.
        enlargement: ventricle enlargement, 0 healthy (ventricles ≈ 2 % of ICV, Evans < 0.3) to 1 NPH-like
            (≈ 7–15 %, Evans 0.3–0.45); larger values extrapolate. The ventricles push the brain aside.
        contrast: ``flair`` or ``t1``.

    Raises:
        InputError: a bad seed, grid, enlargement or contrast.
    """
    seed = _check_seed(seed)
    grid_shape, grid_spacing = _check_grid(shape, spacing)
    kind = _check_contrast(contrast)
    if isinstance(enlargement, bool) or not isinstance(enlargement, int | float | np.number) or not (
        np.isfinite(enlargement) and enlargement >= 0
    ):
        raise InputError(f"enlargement: expected a number ≥ 0, got {enlargement!r}")
    anatomy_seq, contrast_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(anatomy_seq)
    affine = grid_affine(grid_shape, grid_spacing)
    coords = _subject_coords(rng, grid_shape, affine)
    gyri = smooth_field(rng, grid_shape, tuple(min(c, s) for c, s in zip((10, 13, 10), grid_shape, strict=True)))
    ventricle_scale = VENTRICLE_SCALE * float(np.exp(rng.normal(0.0, VENTRICLE_SCALE_SD)))
    labels = make_labels(coords, rng, float(enlargement), gyri=gyri, ventricle_scale=ventricle_scale)
    image = paint_image(labels, grid_spacing, kind, np.random.default_rng(contrast_seq), enlargement=enlargement)
    return Phantom(label_ids=labels, image=image, affine=affine, enlargement=float(enlargement))


@dataclass(frozen=True)
class _CaseJob:
    """Everything a worker needs to write case ``index`` (picklable for the process pool)."""

    root: Path
    index: int
    seed: int
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    enlargement_range: tuple[float, float]
    contrast: str


def case_draws(seed: int, index: int, enlargement_range: tuple[float, float]) -> tuple[float, int]:
    """Case ``index``'s enlargement and anatomy seed, from ``SeedSequence([seed, index])`` alone."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    enlargement = float(rng.uniform(*enlargement_range))
    return enlargement, int(rng.integers(0, 2**63 - 1))


def _write_one(job: _CaseJob) -> dict[str, Any]:
    enlargement, anatomy_seed = case_draws(job.seed, job.index, job.enlargement_range)
    phantom = make_phantom(
        anatomy_seed, shape=job.shape, spacing=job.spacing, enlargement=enlargement, contrast=job.contrast
    )
    provenance = {"source": "phantom", "seed": job.seed, "index": job.index, "enlargement": enlargement,
                  "contrast": job.contrast, "anatomy_seed": anatomy_seed}
    case_id = f"{CASE_PREFIX}{job.index:04d}"
    return write_case(DatasetPaths(job.root), case_id, phantom.label_ids, phantom.affine, phantom.image, provenance)


def _check_range(enlargement_range: Sequence[Any]) -> tuple[float, float]:
    """[low, high] with 0 ≤ low ≤ high; errors name ``ventricles``, the command's key for it."""
    values = list(enlargement_range)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int | float | np.number) for v in values):
        raise InputError(f"ventricles: expected [low, high] enlargements, got {values}")
    low, high = float(values[0]), float(values[1])
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high < low:
        raise InputError(f"ventricles: expected 0 ≤ low ≤ high (finite), got {values}")
    return low, high


def _parameters(n: int, seed: int, shape: tuple[int, int, int], spacing: tuple[float, ...],
                enlargement_range: tuple[float, float], contrast: str) -> dict[str, Any]:
    """What dataset.json records under ``nph.phantom``: enough to recreate the folder byte for byte."""
    return {"n": n, "seed": seed, "shape": list(shape), "spacing": list(spacing),
            "enlargement_range": list(enlargement_range), "contrast": contrast}


def _check_target(paths: DatasetPaths, parameters: dict[str, Any], overwrite: bool) -> None:
    """Refuse an ``out`` folder that holds anything but this same phantom dataset (or its interrupted run)."""
    root = paths.root
    if root.exists() and not root.is_dir():
        raise InputError(f"out: {root} exists and is not a folder")
    if overwrite or not root.exists() or not any(root.iterdir()):
        return
    if paths.dataset_json.is_file():
        try:
            recorded = json.loads(paths.dataset_json.read_text()).get("nph", {}).get("phantom")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            recorded = None
        if recorded == parameters:
            return
        raise InputError(f"out: {root} already holds a different dataset; choose another folder or set overwrite=true")
    if not _only_case_files(paths):
        raise InputError(f"out: {root} is not empty and holds no phantom dataset; choose another folder "
                         "or set overwrite=true")


def _only_case_files(paths: DatasetPaths) -> bool:
    """An interrupted phantom run: nothing but imagesTr/ and labelsTr/ holding phantom case files.

    A ``launch/`` folder (job records of ``python -m launch``, which runs this command) is left alone.
    """
    allowed = {paths.images_dir.name, paths.labels_dir.name}
    for entry in paths.root.iterdir():
        if entry.name == LAUNCH_RECORDS and entry.is_dir():
            continue
        if entry.name not in allowed or not entry.is_dir():
            return False
        if any(not f.name.startswith((CASE_PREFIX, TEMP_PREFIX)) for f in entry.iterdir()):
            return False
    return True


def _remove_stale(paths: DatasetPaths, manifest: pd.DataFrame) -> None:
    """Delete case files in imagesTr/labelsTr that the new manifest does not list (an overwritten dataset's)."""
    keep = {paths.root / p for column in ("image", "label") for p in manifest[column] if p}
    for folder in (paths.images_dir, paths.labels_dir):
        for path in folder.glob(f"*{FILE_ENDING}") if folder.is_dir() else ():
            if path not in keep:
                log.info("removing %s: not part of the new dataset", path)
                path.unlink()


def write_phantom_dataset(
    out: str | Path,
    n: int,
    seed: int,
    *,
    shape: Sequence[int] = THESIS_SHAPE,
    spacing: Sequence[float] = THESIS_SPACING,
    enlargement_range: Sequence[float] = (0.0, 1.0),
    contrast: str = "flair",
    workers: int = 1,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Write ``n`` phantoms as a labelled dataset folder and return its manifest.

    Case ``phantom_{i:04d}`` takes its enlargement (uniform in ``enlargement_range``) and anatomy seed from
    ``SeedSequence([seed, i])``, so it is the same case whatever ``n`` or ``workers`` are, and the same
    arguments write the same bytes.

    Args:
        out: the dataset folder; refused if it holds a different dataset, unless ``overwrite``.
        n: number of cases (≥ 1).
        seed: non-negative integer.
        shape, spacing: the grid (voxels, mm).
        enlargement_range: [low, high] of the uniform enlargement draw (0 ≤ low ≤ high).
        contrast: ``flair`` or ``t1``.
        workers: processes that make cases in parallel (1 = this process).
        overwrite: replace whatever ``out`` holds.

    Raises:
        InputError: a bad argument, or an ``out`` folder that would be damaged.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InputError(f"n: expected a positive integer (number of cases), got {n!r}")
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise InputError(f"workers: expected a positive integer, got {workers!r}")
    seed = _check_seed(seed)
    grid_shape, grid_spacing = _check_grid(shape, spacing)
    kind = _check_contrast(contrast).value
    low_high = _check_range(enlargement_range)
    paths = DatasetPaths(Path(out))
    parameters = _parameters(int(n), seed, grid_shape, grid_spacing, low_high, kind)
    _check_target(paths, parameters, overwrite)
    jobs = [_CaseJob(paths.root, i, seed, grid_shape, grid_spacing, low_high, kind) for i in range(int(n))]
    start = time.perf_counter()
    rows = _run_jobs(jobs, int(workers))
    seconds = time.perf_counter() - start
    log.info("%d phantoms in %.1f s (%.2f cases/s, %d worker(s))", len(rows), seconds, len(rows) / seconds, workers)
    manifest = finalize(paths, rows, modality=kind.upper(), description=f"nph phantoms (seed {seed})",
                        extra={"phantom": parameters})
    _remove_stale(paths, manifest)
    return manifest


def _run_jobs(jobs: list[_CaseJob], workers: int) -> list[dict[str, Any]]:
    """Make and write every case, in this process or a spawn-started pool, with a progress bar."""
    bar = progress(total=len(jobs), desc="phantoms", unit="case")
    try:
        if workers == 1 or len(jobs) == 1:
            rows = []
            for job in jobs:
                rows.append(_write_one(job))
                bar.update()
            return rows
        context = multiprocessing.get_context("spawn")  # fork is unsafe once threads (torch, BLAS) exist
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
            futures = [pool.submit(_write_one, job) for job in jobs]
            try:
                for future in as_completed(futures):
                    future.result()
                    bar.update()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # stop at the first failure, not after every case
                raise
            return [future.result() for future in futures]
    finally:
        bar.close()
