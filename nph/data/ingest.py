"""Real scans and their label maps → a labelled dataset folder on nph's grid (``nph ingest``).

Each case is loaded (RAS+), checked, filtered, mapped to SynthSeg ids, put on the grid centred on its
head, and written with :func:`nph.data.dataset.write_case` — in a process pool, one case per task. A bad
case is reported and skipped; the others finish. Each finished case leaves a small record in
``DIR/.ingest/`` so a rerun after an interruption skips it when its sources and options are unchanged.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from enum import Enum
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from tqdm import tqdm

from nph.data.dataset import DatasetPaths, finalize, write_case
from nph.data.grid import DEFAULT_PERCENTILES, Grid, to_grid
from nph.data.ingest_filters import Filters, filter_reason, sidecar_path
from nph.data.ingest_layouts import CaseSource
from nph.data.labels import LABEL_IDS, aseg_to_synthseg, check_ids
from nph.errors import InputError
from nph.io.atomic import write_json, write_text
from nph.io.nifti import Volume, check_pair, load_volume

__all__ = ["ERRORS_CSV", "RECORDS_DIR", "CaseFailure", "IngestOptions", "IngestReport", "LabelScheme", "ingest"]

log = logging.getLogger(__name__)

ERRORS_CSV = "ingest_errors.csv"
#: Per-case resume records inside the dataset folder (hidden: nnU-Net and the manifest ignore it).
RECORDS_DIR = ".ingest"


class LabelScheme(str, Enum):
    """Which ids the label maps hold: SynthSeg's 33, FreeSurfer aseg, or decide per case."""

    AUTO = "auto"
    SYNTHSEG = "synthseg"
    ASEG = "aseg"


@dataclass(frozen=True)
class IngestOptions:
    """How cases are brought onto the grid.

    Args:
        grid: target shape and spacing.
        label_scheme: ``auto`` applies the aseg mapping when any id is outside SynthSeg's 33.
        filters: which scans to leave out.
        percentiles: intensity percentiles of the head mapped to 0 and 1.
        workers: processes; 1 runs in this process.
        modality: the channel name in dataset.json.
    """

    grid: Grid
    label_scheme: LabelScheme = LabelScheme.AUTO
    filters: Filters = field(default_factory=Filters)
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    workers: int = 1
    modality: str = "MRI"

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
        }


@dataclass(frozen=True)
class CaseFailure:
    """One bad case: its id, the file at fault, and what is wrong with it."""

    case: str
    file: str
    problem: str


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
    """Ingest ``sources`` into the labelled dataset folder ``out``; cases done before are skipped.

    Returns:
        The report; when it lists failures, ``out/ingest_errors.csv`` lists them too.

    Raises:
        InputError: ``out`` is a file, or no case is usable (then nothing is written).
    """
    paths = DatasetPaths(out)
    if paths.root.exists() and not paths.root.is_dir():
        raise InputError(f"out={paths.root}: exists and is not a folder")
    if not sources:
        raise InputError("no cases to ingest")
    _check_not_foreign(paths)
    rows: dict[str, dict[str, Any]] = {}
    resumed = []
    for source in sources:
        row = _resumable_row(paths, source, options)
        if row is not None:
            rows[source.case_id] = row
            resumed.append(source.case_id)
    todo = [s for s in sources if s.case_id not in rows]
    if resumed:
        log.info("resuming: %d of %d cases already in %s", len(resumed), len(sources), paths.root)
    filtered: dict[str, str] = {}
    failures: list[CaseFailure] = []
    for outcome in _run_all(todo, paths.root, options):
        if outcome.row is not None:
            rows[outcome.case] = outcome.row
        elif outcome.filtered is not None:
            filtered[outcome.case] = outcome.filtered
            log.info("filtered out %s: %s", outcome.case, outcome.filtered)
        elif outcome.failure is not None:
            failures.append(outcome.failure)
            log.error("%s: %s (case %s skipped)", outcome.failure.file, outcome.failure.problem, outcome.case)
    if not rows:
        raise InputError(
            f"out={paths.root}: no usable case among {len(sources)} "
            f"({len(failures)} failed, {len(filtered)} filtered out); nothing written"
        )
    manifest = finalize(paths, rows.values(), modality=options.modality,
                        description="real scans brought onto nph's grid by nph ingest",
                        extra={"source": "ingest", "ingest_options": options.fingerprint()})
    errors_csv = _write_errors(paths.root, sorted(failures, key=lambda f: f.case))
    written = sorted(set(rows) - set(resumed))
    return IngestReport(manifest, written, sorted(resumed), filtered, failures, errors_csv)


def _check_not_foreign(paths: DatasetPaths) -> None:
    """Refuse to rewrite the manifest of a dataset that another command made (phantoms, synthetic data)."""
    if not paths.dataset_json.is_file():
        return
    try:
        source = json.loads(paths.dataset_json.read_text()).get("nph", {}).get("source")
    except (ValueError, AttributeError):
        source = None
    if source != "ingest":
        raise InputError(f"out={paths.root}: holds a dataset not made by nph ingest; choose an empty or ingest folder")


def _run_all(todo: list[CaseSource], root: Path, options: IngestOptions) -> Iterator[_Outcome]:
    """Process cases (in a pool when ``workers`` > 1), with a progress bar and a cases/s figure."""
    if not todo:
        return
    start = time.perf_counter()
    workers = min(options.workers, len(todo))
    with tqdm(total=len(todo), unit="case", desc="ingest") as bar:
        if workers == 1:
            for source in todo:
                yield _process_case(source, root, options)
                bar.update()
        else:
            # spawn: workers start clean, whatever threads the parent holds (tqdm, BLAS).
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(_process_case, source, root, options) for source in todo]
                for future in as_completed(futures):
                    yield future.result()
                    bar.update()
    seconds = time.perf_counter() - start
    log.info("processed %d cases in %.1f s (%.2f cases/s, %d workers)", len(todo), seconds,
             len(todo) / max(seconds, 1e-9), workers)


def _process_case(source: CaseSource, root: Path, options: IngestOptions) -> _Outcome:
    """Load, check, filter, map labels, resample and write one case; a user-input problem becomes a failure."""
    candidates = (source.image, source.label, sidecar_path(source.image))
    at_fault = source.image
    try:
        image = load_volume(source.image)
        at_fault = source.label
        label = load_volume(source.label, integer=True)
        check_pair(image, label, image_path=source.image, label_path=source.label)
        at_fault = source.image
        reason = filter_reason(source.image, image.spacing, options.filters)
        if reason is not None:
            return _Outcome(source.case_id, filtered=reason)
        at_fault = source.label
        ids, scheme = _to_synthseg(label.data, options.label_scheme, str(source.label))
        gridded = to_grid(Volume(ids, label.affine), options.grid, image, options.percentiles,
                          label_source=str(source.label), image_source=str(source.image))
        at_fault = source.image
        provenance = {
            "source": "ingest",
            "source_image": str(source.image.resolve()),
            "source_label": str(source.label.resolve()),
            "original_spacing": json.dumps([round(s, 4) for s in image.spacing]),
            "original_shape": json.dumps(list(image.shape)),
            "label_scheme": scheme.value,
            "icv_retained": round(gridded.icv_retained, 4),
        }
        paths = DatasetPaths(root)
        assert gridded.image is not None  # an image was given, so one comes back
        row = write_case(paths, source.case_id, gridded.label.data, gridded.label.affine,
                         image=gridded.image.data, provenance=provenance)
        _write_record(root, source, options, row)
        return _Outcome(source.case_id, row=row)
    except InputError as err:
        file, problem = _split_message(str(err), candidates, at_fault)
        return _Outcome(source.case_id, failure=CaseFailure(source.case_id, file, problem))


def _to_synthseg(
    ids: npt.NDArray[np.integer], scheme: LabelScheme, source: str
) -> tuple[npt.NDArray[np.int16], LabelScheme]:
    """Map a label map to SynthSeg ids; ``auto`` treats any id outside the 33 as a sign of aseg."""
    if scheme is LabelScheme.AUTO:
        outside = np.setdiff1d(np.unique(ids), LABEL_IDS)
        scheme = LabelScheme.ASEG if outside.size else LabelScheme.SYNTHSEG
    if scheme is LabelScheme.SYNTHSEG:
        check_ids(ids, source)
        return ids.astype(np.int16), scheme
    return aseg_to_synthseg(ids, source), scheme


def _split_message(message: str, candidates: Iterable[Path], default: Path) -> tuple[str, str]:
    """``"<file>: <problem>"`` → (file, problem); messages that name no candidate blame ``default``."""
    for path in candidates:
        prefix = f"{path}: "
        if message.startswith(prefix):
            return str(path), message[len(prefix):]
    return str(default), message


def _source_stamp(source: CaseSource) -> dict[str, Any]:
    """Source paths plus size and mtime: a changed source file is ingested again."""
    stamp: dict[str, Any] = {}
    for key, path in (("image", source.image), ("label", source.label)):
        stat = path.stat()
        stamp[key] = str(path.resolve())
        stamp[f"{key}_size"] = stat.st_size
        stamp[f"{key}_mtime_ns"] = stat.st_mtime_ns
    return stamp


def _record_path(root: Path, case_id: str) -> Path:
    return root / RECORDS_DIR / f"{case_id}.json"


def _write_record(root: Path, source: CaseSource, options: IngestOptions, row: dict[str, Any]) -> None:
    """Written after the case's files, so a record means its files are complete."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    record = {"sources": _source_stamp(source), "options": options.fingerprint(), "row": clean}
    write_json(_record_path(root, source.case_id), record)


def _resumable_row(paths: DatasetPaths, source: CaseSource, options: IngestOptions) -> dict[str, Any] | None:
    """The manifest row of a case finished earlier from the same sources and options, else ``None``."""
    record_path = _record_path(paths.root, source.case_id)
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        unchanged = record["sources"] == _source_stamp(source) and record["options"] == options.fingerprint()
        row = dict(record["row"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable record or vanished source: ingest the case again
    if not (unchanged and paths.image(source.case_id).is_file() and paths.label(source.case_id).is_file()):
        return None
    return {k: (float("nan") if v is None else v) for k, v in row.items()}


def _write_errors(root: Path, failures: list[CaseFailure]) -> Path | None:
    """Write ``ingest_errors.csv`` (case, file, problem), or remove a stale one when all went well."""
    path = root / ERRORS_CSV
    if not failures:
        path.unlink(missing_ok=True)
        return None
    buffer = io.StringIO()
    pd.DataFrame([asdict(f) for f in failures], columns=["case", "file", "problem"]).to_csv(buffer, index=False)
    write_text(path, buffer.getvalue())
    return path
