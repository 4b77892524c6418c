"""Conditioning fidelity of a folder of sampled masks: requested vs realised ventricle fraction, and a plot.

Works in the mask model's normalised units (0 = smallest, 1 = largest training ventricles), taken from the
``nph.generator.condition`` range that ``sample-masks`` records in dataset.json.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from nph.data.dataset import LabelledDataset
from nph.errors import InputError
from nph.evaluation.fidelity import conditioning_fidelity
from nph.io.atomic import write_bytes, write_json

__all__ = ["evaluate_mask_fidelity"]

log = logging.getLogger(__name__)


def evaluate_mask_fidelity(masks: str | Path, out: str | Path) -> dict[str, Any]:
    """Write ``out/fidelity.json`` and ``out/fidelity.png`` for the sampled masks in ``masks``; return the numbers."""
    dataset = LabelledDataset(masks)
    generator = dataset.info["nph"].get("generator", {})
    if "condition" not in generator or "requested_condition" not in dataset.manifest.columns:
        raise InputError(f"{dataset.paths.root}: not a folder written by `nph sample-masks` (no requested condition)")
    low, high = float(generator["condition"]["min"]), float(generator["condition"]["max"])
    requested = dataset.manifest["requested_condition"].to_numpy(dtype=np.float64)
    realised = (dataset.manifest["ventricle_fraction"].to_numpy(dtype=np.float64) - low) / (high - low)
    result = {"masks": str(Path(masks).resolve()), "units": "normalised ventricle fraction",
              "training_range": [low, high], **conditioning_fidelity(requested, realised)}
    out = Path(out)
    write_json(out / "fidelity.json", result)
    write_bytes(out / "fidelity.png", _plot(requested, realised, result.get("pearson_r")))
    log.info("conditioning fidelity: r=%s, MAE=%s over %d masks", result.get("pearson_r"), result.get("mae"),
             result["n"])
    return result


def _plot(requested: np.ndarray, realised: np.ndarray, r: float | None) -> bytes:
    figure, axes = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    axes.scatter(requested, realised, s=12, alpha=0.7)
    top = float(max(1.0, np.nanmax(requested), np.nanmax(realised)))
    axes.plot([0, top], [0, top], "k--", lw=1, label="ideal")
    axes.axvline(1.0, color="grey", lw=0.8, ls=":")
    axes.set(xlabel="requested (normalised ventricle fraction)", ylabel="realised",
             title=f"conditioning fidelity (r = {r:.2f})" if r is not None else "conditioning fidelity")
    axes.legend(loc="upper left")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
