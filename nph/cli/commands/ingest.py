"""Bring real scans onto the grid as a dataset folder: with SynthSeg/aseg labels, ventricle masks, or none.

    nph ingest images='scans/*_FLAIR.nii.gz' labels='seg/*_synthseg.nii.gz' out=DIR
    nph ingest images='scans/*_FLAIR.nii.gz' labels='masks/*_mask.nii.gz' label_scheme=ventricles out=DIR
    nph ingest images='test/*_FLAIR.nii.gz' out=DIR          (no labels: an imagesTs/ folder for prediction)
    nph ingest layout=freesurfer root=SUBJECTS_DIR [label_file=aseg.mgz] out=DIR
    nph ingest layout=ldm100k root=DIR out=DIR

Image and label map may lie on different grids (voxel size, orientation, field of view): both are resampled
through world coordinates onto the grid (grid.shape at grid.spacing, centred on the head); a label map that
does not lie on its image's head is refused. Intensities are scaled to [0, 1] by the 0.5/99.5 percentiles
inside a head mask found from the image alone. Bad cases are reported one line each at the end and listed
in DIR/ingest_errors.csv; the good ones are written, and the command then exits with status 2. A rerun with
the same sources and options skips the cases already written.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import TypeVar

from omegaconf import DictConfig

from nph.cli.options import flag, integer, path, plain
from nph.data.grid import Grid, LabelResampling
from nph.data.ingest import IngestOptions, LabelScheme, ingest
from nph.data.ingest_filters import Filters
from nph.data.ingest_layouts import (
    DEFAULT_CASE_SUFFIX,
    CaseSource,
    freesurfer_cases,
    image_only_cases,
    ldm100k_cases,
    paired_cases,
)
from nph.errors import InputError

__all__ = ["run"]

log = logging.getLogger(__name__)
LAYOUTS = ("paired", "freesurfer", "ldm100k")
_Choice = TypeVar("_Choice", bound=Enum)


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
    if cfg.layout in ("ldm100k", "freesurfer"):
        if not cfg.root:
            raise InputError(f"root: layout={cfg.layout} needs root=DIR")
        if cfg.layout == "ldm100k":
            return ldm100k_cases(path(cfg, "root"))
        label_file = str(cfg.label_file) if cfg.label_file else None
        return freesurfer_cases(path(cfg, "root"), label_file, str(cfg.image_file) if cfg.image_file else None)
    if not cfg.get("images"):
        raise InputError("images: layout=paired needs images=GLOB (and labels=GLOB, unless the scans are unlabelled)")
    suffix = str(cfg.case_suffix or DEFAULT_CASE_SUFFIX)
    if not cfg.get("labels"):
        return image_only_cases(str(cfg.images), suffix)
    return paired_cases(str(cfg.images), str(cfg.labels), suffix)


def _options(cfg: DictConfig) -> IngestOptions:
    scheme = _choice(cfg, "label_scheme", LabelScheme)
    resampling = _choice(cfg, "label_resampling", LabelResampling)
    shape, spacing, percentiles = (_numbers(cfg, key) for key in ("shape", "spacing", "percentiles"))
    if len(percentiles) != 2:
        raise InputError(f"percentiles: expected [low, high], got {percentiles}")
    limit = cfg.filters.max_slice_thickness_mm
    filters = Filters(require_3d=flag(cfg.filters, "require_3d"), max_slice_thickness_mm=limit)
    grid = Grid(shape=tuple(shape), spacing=tuple(spacing))  # type: ignore[arg-type]
    return IngestOptions(grid=grid, label_scheme=scheme, filters=filters, percentiles=(percentiles[0], percentiles[1]),
                         workers=integer(cfg, "workers", minimum=1), modality=str(cfg.modality),
                         label_resampling=resampling)


def _choice(cfg: DictConfig, key: str, kind: type[_Choice]) -> _Choice:
    try:
        return kind(str(cfg[key]))
    except ValueError as err:
        known = ", ".join(str(c.value) for c in kind)
        raise InputError(f"{key}: '{cfg[key]}' is not one of {known}") from err


def _numbers(cfg: DictConfig, key: str) -> list[float]:
    """A list of numbers from the config, as written (ints stay ints, so messages echo the user's values)."""
    value = plain(cfg, key)
    if not isinstance(value, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise InputError(f"{key}: expected a list of numbers, got {value!r}")
    return list(value)
