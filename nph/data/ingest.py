"""Real scans (with or without label maps) → a dataset folder on nph's grid (``nph ingest``).

Each case is loaded (RAS+), checked, filtered, its labels read in the chosen scheme, put on the grid
(image and labels each from their own grid, through world coordinates) and written — in a process pool,
one case per task. Labelled cases make a labelled dataset folder; image-only cases an ``imagesTs/`` folder
for prediction. A bad case is reported and skipped; the others finish. Each finished case leaves a record
in ``DIR/.ingest/`` so a rerun after an interruption skips it when its sources and options are unchanged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from nph.data.dataset import DatasetPaths, dataset_label_scheme, finalize, write_case, write_test_case
from nph.data.grid import DEFAULT_PERCENTILES, Grid, GriddedCase, LabelResampling, to_grid
from nph.data.ingest_filters import Filters, filter_reason, sidecar_path
from nph.data.ingest_layouts import CaseSource
from nph.data.ingest_records import ERRORS_CSV, RECORDS_DIR, CaseFailure, read_record, write_errors, write_record
from nph.data.ingest_schemes import LabelScheme, stored_scheme, to_stored_ids
from nph.errors import InputError
from nph.io.nifti import Volume, load_volume
from nph.progress import progress

__all__ = ["ERRORS_CSV", "MIN_VOXELS_PER_AXIS", "RECORDS_DIR", "CaseFailure", "IngestOptions", "IngestReport",
           "LabelScheme", "ingest"]

log = logging.getLogger(__name__)

#: Fewer voxels than this along an axis is a slice (stack), not a 3D volume.
MIN_VOXELS_PER_AXIS = 4


@dataclass(frozen=True)
class IngestOptions:
    """How cases are brought onto the grid.

    Args:
        grid: target shape and spacing.
        label_scheme: how label maps are read (:mod:`nph.data.ingest_schemes`).
        filters: which scans to leave out.
        percentiles: intensity percentiles inside the image's head mask mapped to 0 and 1.
        workers: processes; 1 runs in this process.
        modality: the channel name in dataset.json.
        label_resampling: one-hot ``linear`` (keeps volumes) or ``nearest``.
    """

    grid: Grid
    label_scheme: LabelScheme = LabelScheme.AUTO
    filters: Filters = field(default_factory=Filters)
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    workers: int = 1
    modality: str = "MRI"
    label_resampling: LabelResampling = LabelResampling.LINEAR

    def __post_init__(self) -> None:
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise InputError(f"percentiles: expected 0 <= low < high <= 100, got {list(self.percentiles)}")
        if self.workers < 1:
            raise InputError(f"workers: expected at least 1, got {self.workers}")

    def fingerprint(self) -> dict[str, Any]:
        """What changes a case's output: a resumed case must have been made with the same values."""
        return {
            "shape": [int(n) for n in self.grid.shape],
            "spacing": [float(s) for s in self.grid.spacing],
            "label_scheme": self.label_scheme.value,
            "filters": asdict(self.filters),
            "percentiles": [float(p) for p in self.percentiles],
            "label_resampling": self.label_resampling.value,
            "intensity_scaling": "head-mask percentiles",
        }


@dataclass
class IngestReport:
    """What :func:`ingest` did; ``errors_csv`` is set when some cases failed."""

    manifest: pd.DataFrame
    written: list[str]
    resumed: list[str]
    filtered: dict[str, str]
    failures: list[CaseFailure]
    errors_csv: Path | None


@dataclass(frozen=True)
class _Outcome:
    case: str
    row: dict[str, Any] | None = None
    filtered: str | None = None
    failure: CaseFailure | None = None


def ingest(sources: Sequence[CaseSource], out: str | Path, options: IngestOptions) -> IngestReport:
    """Ingest ``sources`` into the dataset folder ``out``; cases done before are skipped.

    All sources have label maps (a labelled dataset folder) or none does (an image-only ``imagesTs/`` folder).

    Returns:
        The report; when it lists failures, ``out/ingest_errors.csv`` lists them too.

    Raises:
        InputError: ``out`` is a file or holds another kind of dataset, or no case is usable (then nothing
            is written; the failures are logged one line each first).
    """
    paths = DatasetPaths(out)
    if paths.root.exists() and not paths.root.is_dir():
        raise InputError(f"out={paths.root}: exists and is not a folder")
    if not sources:
        raise InputError("no cases to ingest")
    scheme = _dataset_scheme(sources, options)
    _check_not_foreign(paths, scheme)
    rows: dict[str, dict[str, Any]] = {}
    for source in sources:
        row = read_record(paths.root, source, options.fingerprint(), partial(_files_present, paths, source))
        if row is not None:
            rows[source.case_id] = row
    resumed = sorted(rows)
    if resumed:
        log.info("resuming: %d of %d cases already in %s", len(resumed), len(sources), paths.root)
    filtered: dict[str, str] = {}
    failures: list[CaseFailure] = []
    for outcome in _run_all([s for s in sources if s.case_id not in rows], paths.root, options):
        if outcome.row is not None:
            rows[outcome.case] = outcome.row
        elif outcome.filtered is not None:
            filtered[outcome.case] = outcome.filtered
            log.info("filtered out %s: %s", outcome.case, outcome.filtered)
        elif outcome.failure is not None:
            failures.append(outcome.failure)
    failures.sort(key=lambda f: f.case)
    for failure in failures:  # at the end, one line each, where the user looks
        log.error("%s", failure.line())
    if not rows:
        if len(sources) == len(failures) == 1:  # the one line says it all
            raise InputError(f"{failures[0].file}: {failures[0].problem}; nothing written to out={paths.root}")
        raise InputError(
            f"out={paths.root}: no usable case among {len(sources)} "
            f"({len(failures)} failed, {len(filtered)} filtered out); nothing written"
        )
    kind = "real scans" if scheme is not None else "unlabelled real scans (test images)"
    manifest = finalize(paths, rows.values(), modality=options.modality, scheme=scheme,
                        description=f"{kind} brought onto nph's grid by nph ingest",
                        extra={"source": "ingest", "ingest_options": options.fingerprint()})
    errors_csv = write_errors(paths.root, failures)
    written = sorted(set(rows) - set(resumed))
    return IngestReport(manifest, written, resumed, filtered, failures, errors_csv)


def _dataset_scheme(sources: Sequence[CaseSource], options: IngestOptions) -> str | None:
    """The folder's label scheme, or ``None`` for image-only sources; a mix of both is refused."""
    labelled = [s.label is not None for s in sources]
    if all(labelled):
        return stored_scheme(options.label_scheme)
    if not any(labelled):
        return None
    example = next(s for s in sources if s.label is None)
    raise InputError(f"{example.image}: has no label map while other cases have one; ingest labelled and "
                     "unlabelled scans into separate folders")


def _files_present(paths: DatasetPaths, source: CaseSource) -> bool:
    if source.label is None:
        return paths.test_image(source.case_id).is_file()
    return paths.image(source.case_id).is_file() and paths.label(source.case_id).is_file()


def _check_not_foreign(paths: DatasetPaths, scheme: str | None) -> None:
    """Refuse a folder that another command made (phantoms, synthetic data) or an ingest of another kind."""
    if not paths.dataset_json.is_file():
        return
    try:
        source = json.loads(paths.dataset_json.read_text()).get("nph", {}).get("source")
        existing = dataset_label_scheme(paths.root)
    except (ValueError, AttributeError):
        source = existing = None
    if source != "ingest":
        raise InputError(f"out={paths.root}: holds a dataset not made by nph ingest; choose an empty or ingest folder")
    if existing != scheme:
        def name(s: str | None) -> str:
            return "an image-only dataset" if s is None else f"a label_scheme={s} dataset"
        raise InputError(f"out={paths.root}: holds {name(existing)}, these cases would make {name(scheme)}; "
                         "choose another folder")


def _run_all(todo: list[CaseSource], root: Path, options: IngestOptions) -> Iterator[_Outcome]:
    """Process cases (in a pool when ``workers`` > 1), with a progress bar and a cases/s figure."""
    if not todo:
        return
    start = time.perf_counter()
    workers = min(options.workers, len(todo))
    with progress(total=len(todo), unit="case", desc="ingest") as bar:
        if workers == 1:
            for source in todo:
                yield _process_case(source, root, options)
                bar.update()
        else:
            # spawn: workers start clean, whatever threads the parent holds (progress, BLAS).
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(_process_case, source, root, options) for source in todo]
                for future in as_completed(futures):
                    yield future.result()
                    bar.update()
    seconds = time.perf_counter() - start
    log.info("processed %d cases in %.1f s (%.2f cases/s, %d workers)", len(todo), seconds,
             len(todo) / max(seconds, 1e-9), workers)


def _check_volume(volume: Volume, path: Path) -> None:
    """A slice (or a stack of a few) is not a head volume: refuse it before it is resampled into stripes."""
    if min(volume.shape) < MIN_VOXELS_PER_AXIS:
        raise InputError(f"{path}: shape {volume.shape} is a 2D slice stack, not a 3D volume "
                         f"(needs at least {MIN_VOXELS_PER_AXIS} voxels along every axis)")


def _load_label(source: CaseSource, options: IngestOptions) -> tuple[Volume, LabelScheme]:
    assert source.label is not None
    raw = load_volume(source.label, integer=True)
    _check_volume(raw, source.label)
    ids, scheme = to_stored_ids(raw.data, options.label_scheme, str(source.label))
    return Volume(ids, raw.affine), scheme


def _process_case(source: CaseSource, root: Path, options: IngestOptions) -> _Outcome:
    """Load, check, filter, read labels, resample and write one case; a user-input problem becomes a failure."""
    candidates = [p for p in (source.image, source.label, sidecar_path(source.image)) if p is not None]
    at_fault = source.image
    try:
        image = load_volume(source.image)
        _check_volume(image, source.image)
        reason = filter_reason(source.image, image.spacing, options.filters)
        if reason is not None:
            return _Outcome(source.case_id, filtered=reason)
        label, scheme = None, None
        if source.label is not None:
            at_fault = source.label
            label, scheme = _load_label(source, options)
            at_fault = source.image
        gridded = to_grid(label, options.grid, image, options.percentiles, label_source=str(source.label),
                          image_source=str(source.image), label_resampling=options.label_resampling,
                          centre_on_image=options.label_scheme is LabelScheme.VENTRICLES)
        row = _write(root, source, gridded, image, scheme, options)
        write_record(root, source, options.fingerprint(), row)
        return _Outcome(source.case_id, row=row)
    except InputError as err:
        file, problem = _split_message(str(err), candidates, at_fault)
        return _Outcome(source.case_id, failure=CaseFailure(source.case_id, file, problem))


def _write(root: Path, source: CaseSource, gridded: GriddedCase, image: Volume, scheme: LabelScheme | None,
           options: IngestOptions) -> dict[str, Any]:
    """Write the gridded case (labelled, or image-only into imagesTs/) and return its manifest row."""
    provenance: dict[str, Any] = {
        "source": "ingest",
        "source_image": str(source.image.resolve()),
        "source_label": str(source.label.resolve()) if source.label is not None else "",
        "original_spacing": json.dumps([round(s, 4) for s in image.spacing]),
        "original_shape": json.dumps(list(image.shape)),
        "label_scheme": scheme.value if scheme is not None else "",
        "icv_retained": round(gridded.icv_retained, 4) if gridded.label is not None else float("nan"),
    }
    paths = DatasetPaths(root)
    assert gridded.image is not None  # ingest always has an image
    if gridded.label is None:
        return write_test_case(paths, source.case_id, gridded.image.data, gridded.image.affine, provenance)
    return write_case(paths, source.case_id, gridded.label.data, gridded.label.affine, image=gridded.image.data,
                      provenance=provenance, scheme=stored_scheme(options.label_scheme))


def _split_message(message: str, candidates: Iterable[Path], default: Path) -> tuple[str, str]:
    """``"<file>: <problem>"`` → (file, problem); messages that name no candidate blame ``default``."""
    for path in candidates:
        prefix = f"{path}: "
        if message.startswith(prefix):
            return str(path), message[len(prefix):]
    return str(default), message
