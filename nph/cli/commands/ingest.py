"""Bring real scans and their label maps (SynthSeg or FreeSurfer aseg ids) into a labelled dataset folder.

    nph ingest images='scans/*_FLAIR.nii.gz' labels='seg/*_synthseg.nii.gz' out=DIR
    nph ingest layout=ldm100k root=DIR out=DIR

Each case is resampled onto the grid (grid.shape at grid.spacing, centred on the head), intensities scaled
to [0, 1] by the head's 0.5/99.5 percentiles. Bad cases are reported one line each and listed in
DIR/ingest_errors.csv; the good ones are written, and the command then exits with status 2.
A rerun with the same sources and options skips the cases already written.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from nph.cli.options import flag, integer, path, plain
from nph.data.grid import Grid
from nph.data.ingest import IngestOptions, LabelScheme, ingest
from nph.data.ingest_filters import Filters
from nph.data.ingest_layouts import DEFAULT_CASE_SUFFIX, CaseSource, ldm100k_cases, paired_cases
from nph.errors import InputError

__all__ = ["run"]

log = logging.getLogger(__name__)
LAYOUTS = ("paired", "ldm100k")


def run(cfg: DictConfig) -> None:
    """Ingest, then fail with exit status 2 if any case was bad (the good ones are written)."""
    options = _options(cfg)
    sources = _sources(cfg)
    report = ingest(sources, path(cfg, "out"), options)
    log.info("%s: %d cases (%d new, %d resumed), %d filtered out, %d failed", cfg.out, len(report.manifest),
             len(report.written), len(report.resumed), len(report.filtered), len(report.failures))
    if report.failures:
        raise InputError(f"{len(report.failures)} of {len(sources)} cases failed (listed above and in "
                         f"{report.errors_csv}); the other {len(report.manifest)} were written to {cfg.out}")


def _sources(cfg: DictConfig) -> list[CaseSource]:
    if cfg.layout not in LAYOUTS:
        raise InputError(f"layout: '{cfg.layout}' is not one of {', '.join(LAYOUTS)}")
    if cfg.layout == "ldm100k":
        if not cfg.root:
            raise InputError("root: layout=ldm100k needs root=DIR (holding rawdata/ and masks/)")
        return ldm100k_cases(path(cfg, "root"))
    missing = [key for key in ("images", "labels") if not cfg.get(key)]
    if missing:
        raise InputError(f"{'/'.join(missing)}: layout=paired needs images=GLOB labels=GLOB")
    return paired_cases(str(cfg.images), str(cfg.labels), str(cfg.case_suffix or DEFAULT_CASE_SUFFIX))


def _options(cfg: DictConfig) -> IngestOptions:
    try:
        scheme = LabelScheme(str(cfg.label_scheme))
    except ValueError as err:
        known = ", ".join(s.value for s in LabelScheme)
        raise InputError(f"label_scheme: '{cfg.label_scheme}' is not one of {known}") from err
    shape, spacing, percentiles = (_numbers(cfg, key) for key in ("shape", "spacing", "percentiles"))
    if len(percentiles) != 2:
        raise InputError(f"percentiles: expected [low, high], got {percentiles}")
    limit = cfg.filters.max_slice_thickness_mm
    filters = Filters(require_3d=flag(cfg.filters, "require_3d"), max_slice_thickness_mm=limit)
    grid = Grid(shape=tuple(shape), spacing=tuple(spacing))  # type: ignore[arg-type]
    return IngestOptions(grid=grid, label_scheme=scheme, filters=filters, percentiles=(percentiles[0], percentiles[1]),
                         workers=integer(cfg, "workers", minimum=1), modality=str(cfg.modality))


def _numbers(cfg: DictConfig, key: str) -> list[float]:
    """A list of numbers from the config, as written (ints stay ints, so messages echo the user's values)."""
    value = plain(cfg, key)
    if not isinstance(value, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise InputError(f"{key}: expected a list of numbers, got {value!r}")
    return list(value)
