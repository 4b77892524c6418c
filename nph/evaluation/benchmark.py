"""``nph evaluate``'s library entry point: score predictions against a reference and write the benchmark folder.

``OUT/per_case.csv``, ``OUT/summary.json``, ``OUT/report.html`` (self-contained), ``OUT/report.md`` and
``OUT/figures/*.png`` — every file written atomically, so an interrupted run leaves earlier results intact.
"""

from __future__ import annotations

import io
import logging
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nph import __version__
from nph.data.dataset import image_cases
from nph.errors import InputError
from nph.evaluation import figures as figs
from nph.evaluation.casewise import load_prediction, score_cases
from nph.evaluation.curves import curves_figure, read_curves, training_summary
from nph.evaluation.evans import DEFAULT_SCALP_MM
from nph.evaluation.report import render_html, render_markdown
from nph.evaluation.schemes import WHOLE, LabelFolder, open_label_folder
from nph.evaluation.stats import json_safe, summarize
from nph.io.atomic import write_bytes, write_json, write_text
from nph.io.nifti import load_volume, spacing_of

__all__ = ["BenchmarkPaths", "package_versions", "run_benchmark"]

log = logging.getLogger(__name__)
VERSIONED = ("numpy", "scipy", "pandas", "torch", "monai", "nibabel", "matplotlib")


class BenchmarkPaths:
    """Where each file of a benchmark folder lives."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.per_case = self.root / "per_case.csv"
        self.summary = self.root / "summary.json"
        self.html = self.root / "report.html"
        self.markdown = self.root / "report.md"
        self.figures = self.root / "figures"


def package_versions() -> dict[str, str]:
    """Versions of nph, Python and the libraries whose numbers the report depends on."""
    versions = {"nph": __version__, "python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_benchmark(
    reference: str | Path,
    predictions: Mapping[str, str | Path],
    out: str | Path,
    *,
    reference_scheme: str | None = None,
    schemes: Mapping[str, str] | None = None,
    baseline: str | None = "synthseg",
    tolerance_mm: float = 1.0,
    images: str | Path | None = None,
    scalp_mm: float = DEFAULT_SCALP_MM,
    n_boot: int = 2000,
    seed: int = 0,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score, summarise and report; returns the summary that summary.json holds.

    Args:
        reference: reference label maps (prediction-style folder or labelled dataset folder).
        predictions: ``{method: folder}``.
        out: the benchmark folder to write.
        reference_scheme: overrides the scheme the reference folder declares.
        schemes: ``{method: scheme}`` overriding what prediction folders declare.
        baseline: the method every other is tested against; None for no tests.
        tolerance_mm: NSD tolerance.
        images: test images (any folder :func:`nph.data.dataset.image_cases` reads) giving the skull width of
            the Evans index when the reference labels only the ventricles; default: the reference's own images.
        scalp_mm: scalp + skull bone per side taken off an image's head width (:mod:`nph.evaluation.evans`).
        n_boot, seed: bootstrap resamples and their seed.
        command: the command line recorded in the report (default ``sys.argv``).

    Raises:
        InputError: no predictions, unknown baseline, unusable folders or files.
    """
    if not predictions:
        raise InputError("predictions: no prediction folder given (predictions={name: DIR, ...})")
    if baseline is not None and baseline not in predictions:
        raise InputError(
            f"baseline: '{baseline}' is not one of predictions {sorted(predictions)} "
            "(set baseline=<method> or baseline=null)"
        )
    schemes = dict(schemes or {})
    unknown = sorted(set(schemes) - set(predictions))
    if unknown:
        raise InputError(f"schemes: {unknown} name no prediction (methods: {sorted(predictions)})")
    ref = open_label_folder(reference, reference_scheme, name="reference")
    folders = {m: open_label_folder(p, schemes.get(m), name=f"predictions.{m}") for m, p in predictions.items()}
    skull_images = _reference_images(ref, images)
    curves = read_curves({m: f.root for m, f in folders.items()})
    per_case = score_cases(ref, folders, tolerance_mm=tolerance_mm, images=skull_images, scalp_mm=scalp_mm)
    summary = summarize(per_case, baseline=baseline, n_boot=n_boot, seed=seed)
    provenance = {
        "command": shlex.join(command if command is not None else sys.argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": {
            "reference": f"{ref.root} ({ref.scheme.scheme.value}, {len(ref.cases)} cases)",
            **{m: f"{f.root} ({f.scheme.scheme.value}, {len(f.cases)} cases)" for m, f in folders.items()},
        },
        "settings": {
            "tolerance_mm": tolerance_mm,
            "baseline": baseline,
            "n_boot": n_boot,
            "seed": seed,
            "evans_skull": "reference labels" if ref.scheme.full_brain else f"image head mask − 2 × {scalp_mm} mm",
            "images": str(images) if images is not None else None,
        },
        "versions": package_versions(),
    }
    summary["training"] = training_summary(curves)
    summary["provenance"] = provenance
    pngs = _figures(per_case, ref, folders)
    if curves:
        pngs["learning_curves"] = figs.png_bytes(curves_figure(curves, list(folders)))
    _write(BenchmarkPaths(out), per_case, summary, pngs)
    return summary


def _reference_images(ref: LabelFolder, images: str | Path | None) -> dict[str, Path]:
    """Test images for the skull width of a ventricle-only reference: ``images``, else the reference's own.

    Raises:
        InputError: ``images`` is given but unreadable or lacks a reference case.
    """
    if ref.scheme.full_brain:
        if images is not None:
            log.warning(
                "images=%s is not used: reference %s labels the whole brain, so its labels give the skull "
                "width of the Evans index",
                images,
                ref.root,
            )
        return {}
    if images is not None:
        found = image_cases(images)
        missing = sorted(set(ref.cases) - set(found))
        if missing:
            raise InputError(
                f"images: {images} has no image for reference case(s) {missing[:5]} ({len(missing)} in all)"
            )
        return found
    if any((ref.root / sub).is_dir() for sub in ("imagesTr", "imagesTs")):
        return image_cases(ref.root)
    log.warning(
        "reference %s labels only the ventricles and holds no images: the Evans index needs the skull "
        "width of the test images (set images=DIR); it is NaN, flagged no_skull",
        ref.root,
    )
    return {}


def _figures(per_case: pd.DataFrame, ref: LabelFolder, folders: Mapping[str, LabelFolder]) -> dict[str, bytes]:
    """PNG bytes per figure name (whole ventricular system)."""
    whole = per_case[per_case["structure"] == WHOLE]
    out = {
        "box_plots": figs.png_bytes(figs.box_figure(whole)),
        "bland_altman": figs.png_bytes(figs.bland_altman_figure(whole)),
        "volume_scatter": figs.png_bytes(figs.volume_scatter_figure(whole)),
        "dice_vs_volume": figs.png_bytes(figs.dice_vs_volume_figure(whole)),
    }
    for method, folder in folders.items():
        for rank, case_id in figs.pick_cases(whole, method).items():
            out[f"overlay_{method}_{rank}"] = figs.png_bytes(_overlay(ref, folder, case_id, f"{method} {rank}"))
    return out


def _overlay(ref: LabelFolder, folder: LabelFolder, case_id: str, label: str):  # type: ignore[no-untyped-def]
    reference = load_volume(ref.cases[case_id], integer=True)
    prediction = load_prediction(folder.cases.get(case_id), reference, folder.scheme, warn=False)
    image_path = ref.root / "imagesTr" / f"{case_id}_0000.nii.gz"
    background = load_volume(image_path).data if image_path.is_file() else reference.data.astype(float)
    if background.shape != reference.shape:
        background = reference.data.astype(float)
    ref_mask = ref.scheme.masks(reference.data)[WHOLE]
    pred_mask = folder.scheme.masks(prediction.data)[WHOLE]
    flags = f", {','.join(prediction.flags)}" if prediction.flags else ""
    title = f"{label}: {case_id} (green reference, orange prediction{flags})"
    return figs.overlay_figure(np.asarray(background, float), ref_mask, pred_mask, title, spacing_of(reference.affine))


def _write(paths: BenchmarkPaths, per_case: pd.DataFrame, summary: dict[str, Any], pngs: Mapping[str, bytes]) -> None:
    buffer = io.StringIO()
    per_case.to_csv(buffer, index=False)
    write_text(paths.per_case, buffer.getvalue())
    safe = json_safe(summary)
    summary.clear()
    summary.update(safe)
    write_json(paths.summary, summary)
    files = {}
    for name, png in pngs.items():
        write_bytes(paths.figures / f"{name}.png", png)
        files[name] = f"figures/{name}.png"
    write_text(paths.markdown, render_markdown(summary, files, summary["provenance"]))
    write_text(paths.html, render_html(summary, pngs, summary["provenance"]))
    log.info("benchmark written to %s (%d figures)", paths.root, len(pngs))
