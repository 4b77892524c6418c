"""Per-case, per-method, per-structure scores: overlap, surface distances, volumes and Evans index.

Rules that decide numbers (also in docs of :func:`score_cases`):

- a case of the reference that a method lacks is scored as an empty prediction and flagged ``missing``
  (Dice 0, predicted volume 0, volume error = the reference volume) — never dropped;
- HD95 and ASSD of a structure that exactly one side lacks are the diagonal of the reference grid's field of
  view, flagged ``worst_case_distance`` (:mod:`nph.evaluation.surface`); they count in means and tests;
- a prediction on another grid is resampled to the reference grid (nearest neighbour), flagged ``resampled``;
- structures that a method's scheme cannot express (per-ventricle scores of a binary prediction) get no row;
- the Evans index is computed for the whole system only: each method's frontal horns (in the lateral ventricles
  where its scheme has them, else in the upper part of the whole mask) over the one skull width of the case,
  taken from the reference (:mod:`nph.evaluation.evans`; flags ``skull_from_image`` and ``no_skull``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nph.data.grid import resample_to
from nph.data.measures import voxel_volume_ml
from nph.errors import InputError
from nph.evaluation.evans import DEFAULT_SCALP_MM, CaseSkull, case_skull
from nph.evaluation.schemes import WHOLE, LabelFolder, LabelScheme
from nph.evaluation.surface import surface_metrics
from nph.io.nifti import AFFINE_ATOL_MM, Volume, load_volume, spacing_of
from nph.progress import progress

__all__ = ["CASE_COLUMNS", "CaseMaps", "load_prediction", "score_case", "score_cases"]

log = logging.getLogger(__name__)

CASE_COLUMNS = (
    "case_id", "method", "structure", "dice", "hd95_mm", "assd_mm", "nsd", "reference_ml", "predicted_ml",
    "volume_error_ml", "abs_volume_error_ml", "rel_volume_error_pct", "evans_reference", "evans_predicted",
    "evans_error", "abs_evans_error", "flag",
)  # fmt: skip


@dataclass
class CaseMaps:
    """A prediction on the reference grid with the flags its loading raised."""

    data: npt.NDArray[np.integer]
    flags: list[str]


def load_prediction(path: Path | None, reference: Volume, scheme: LabelScheme, *, warn: bool = True) -> CaseMaps:
    """Load ``path`` on the reference grid; ``None`` (no file) gives an empty map flagged ``missing``."""
    if path is None:
        return CaseMaps(np.zeros(reference.shape, dtype=np.int32), ["missing"])
    volume = load_volume(path, integer=True)
    scheme.check_values(volume.data, path)
    same_grid = volume.shape == reference.shape and np.allclose(volume.affine, reference.affine, atol=AFFINE_ATOL_MM)
    if same_grid:
        return CaseMaps(volume.data, [])
    if warn:
        log.warning(
            "%s: grid %s differs from the reference's %s; resampled (nearest neighbour)",
            path,
            volume.shape,
            reference.shape,
        )
    return CaseMaps(resample_to(volume, reference.affine, reference.shape, order=0).data, ["resampled"])


def score_case(
    case_id: str,
    method: str,
    reference: Volume,
    ref_scheme: LabelScheme,
    prediction: CaseMaps,
    pred_scheme: LabelScheme,
    *,
    tolerance_mm: float,
    skull: CaseSkull | None = None,
) -> list[dict[str, Any]]:
    """Rows of :data:`CASE_COLUMNS` for one case and method; ``skull`` None: the reference's labels alone."""
    spacing, voxel_ml = spacing_of(reference.affine), voxel_volume_ml(reference.affine)
    ref_masks, pred_masks = ref_scheme.masks(reference.data), pred_scheme.masks(prediction.data)
    rows = []
    for structure, ref_mask in ref_masks.items():
        if structure not in pred_masks:
            continue
        pred_mask = pred_masks[structure]
        metrics = surface_metrics(ref_mask, pred_mask, spacing, tolerance_mm=tolerance_mm)
        ref_ml, pred_ml = float(ref_mask.sum()) * voxel_ml, float(pred_mask.sum()) * voxel_ml
        flags = [*prediction.flags, metrics.empty.value, "worst_case_distance" if metrics.worst_case else ""]
        evans_ref = evans_pred = float("nan")
        if structure == WHOLE:
            skull = skull or case_skull(reference, ref_scheme)
            evans_ref = skull.reference
            evans_pred = skull.evans_of(pred_scheme, prediction.data, reference.affine)
            flags.append(skull.flag)
        rows.append(
            {
                "case_id": case_id,
                "method": method,
                "structure": structure,
                "dice": metrics.dice,
                "hd95_mm": metrics.hd95,
                "assd_mm": metrics.assd,
                "nsd": metrics.nsd,
                "reference_ml": ref_ml,
                "predicted_ml": pred_ml,
                "volume_error_ml": pred_ml - ref_ml,
                "abs_volume_error_ml": abs(pred_ml - ref_ml),
                "rel_volume_error_pct": 100.0 * (pred_ml - ref_ml) / ref_ml if ref_ml > 0 else float("nan"),
                "evans_reference": evans_ref,
                "evans_predicted": evans_pred,
                "evans_error": evans_pred - evans_ref,
                "abs_evans_error": abs(evans_pred - evans_ref),
                "flag": ",".join(f for f in flags if f),
            }
        )
    return rows


def score_cases(
    reference: LabelFolder,
    predictions: Mapping[str, LabelFolder],
    *,
    tolerance_mm: float = 1.0,
    images: Mapping[str, Path] | None = None,
    scalp_mm: float = DEFAULT_SCALP_MM,
) -> pd.DataFrame:
    """Score every reference case for every method; the table of :data:`CASE_COLUMNS`, sorted.

    Args:
        reference, predictions: the folders.
        tolerance_mm: NSD tolerance.
        images: ``{case: test image}``, the skull width of a ventricle-only reference (:mod:`.evans`).
        scalp_mm: scalp + bone per side taken off the image's head width.

    Raises:
        InputError: a method shares no case with the reference, or a file is unreadable or off-scheme.
    """
    _check_overlap(reference, predictions)
    images = images if images is not None and not reference.scheme.full_brain else {}
    rows: list[dict[str, Any]] = []
    bar = progress(sorted(reference.cases), desc="evaluate", unit="case")
    for case_id in bar:
        ref = load_volume(reference.cases[case_id], integer=True)
        reference.scheme.check_values(ref.data, reference.cases[case_id])
        image_path = images.get(case_id)
        image = load_volume(image_path) if image_path is not None else None
        skull = case_skull(ref, reference.scheme, image, scalp_mm=scalp_mm, source=str(image_path))
        for method, folder in predictions.items():
            maps = load_prediction(folder.cases.get(case_id), ref, folder.scheme)
            rows += score_case(
                case_id, method, ref, reference.scheme, maps, folder.scheme, tolerance_mm=tolerance_mm, skull=skull
            )
    rate = len(reference.cases) / max(bar.format_dict["elapsed"], 1e-9)
    log.info("scored %d cases × %d methods (%.1f cases/s)", len(reference.cases), len(predictions), rate)
    return pd.DataFrame(rows, columns=list(CASE_COLUMNS))


def _check_overlap(reference: LabelFolder, predictions: Mapping[str, LabelFolder]) -> None:
    """Refuse a method that shares no case with the reference; warn about cases the reference lacks."""
    for method, folder in predictions.items():
        common = set(folder.cases) & set(reference.cases)
        if not common:
            raise InputError(
                f"predictions.{method}: {folder.root} shares no case id with reference {reference.root} "
                f"(e.g. {sorted(folder.cases)[:3]} vs {sorted(reference.cases)[:3]})"
            )
        extra = sorted(set(folder.cases) - set(reference.cases))
        if extra:
            log.warning("predictions.%s: %d case(s) without reference are ignored: %s", method, len(extra), extra[:5])
