"""The benchmark's Evans index: one skull width per case, taken from the reference, shared by every method.

Evans index = maximal frontal-horn width / inner skull width (:mod:`nph.data.measures`). The skull width of a
case is measured once, on the axial slice where the *reference's* frontal horns are widest (the widest slice
of the skull when the reference has no lateral ventricles):

- a reference that labels the whole brain: the intracranial (non-background) voxels of its label map — the
  same number as the dataset manifest's ``evans_index``;
- a ventricle-only reference: the head of the test image (:func:`nph.data.head_mask.head_mask`). That mask
  holds scalp and skull bone too, so ``scalp_mm`` (their combined thickness on each side) is taken off both
  sides: inner skull width ≈ head width − 2 × ``scalp_mm``. It is an approximation (scalp and bone vary
  between people, and a skull-stripped image needs ``scalp_mm=0``), flagged ``skull_from_image``;
- neither (no image for a ventricle-only reference): NaN, flagged ``no_skull``.

Each method's index is its own maximal frontal-horn width over that same width, so the reference's value is
identical in every method's row, and a method that finds no ventricle gets 0 rather than NaN. Frontal horns are
sought in the lateral ventricles (the whole system of a binary mask). Where a scheme gives the temporal horns
no label of their own (binary masks, an expert's lateral/3rd/4th split), they are left out by position: only
voxels above the ventricular system's centroid count (:func:`horn_mask`). The temporal horns lie in the
anterior half too, farther apart than the frontal horns, but below that centroid, with the 4th ventricle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nph.data.grid import resample_to
from nph.data.head_mask import head_mask
from nph.data.measures import frontal_horn_width, skull_width_mm, to_ras
from nph.errors import InputError
from nph.evaluation.schemes import WHOLE, LabelScheme
from nph.io.nifti import AFFINE_ATOL_MM, Volume, spacing_of

__all__ = ["DEFAULT_SCALP_MM", "CaseSkull", "case_skull", "horn_mask"]

#: Scalp plus skull bone on each side of the head at the level of the frontal horns (mm), adults: roughly
#: 4–7 mm of scalp and 4–7 mm of bone. An approximation; set 0 for skull-stripped images and for phantoms.
DEFAULT_SCALP_MM = 10.0


@dataclass(frozen=True)
class CaseSkull:
    """The inner skull width of one case (mm; NaN when unknown), where it came from, and the reference's index."""

    width_mm: float
    source: str  # "labels" | "image" | "" (none)
    reference: float

    @property
    def flag(self) -> str:
        """The per-case flag naming an approximate or missing skull ('' for the reference's own labels)."""
        if not math.isfinite(self.width_mm):
            return "no_skull"
        return "skull_from_image" if self.source == "image" else ""

    def evans_of(self, scheme: LabelScheme, data: npt.NDArray[np.integer], affine: npt.NDArray) -> float:
        """Evans index of a label map (read by ``scheme``) over this case's skull; 0 when it has no ventricle."""
        if not math.isfinite(self.width_mm):
            return float("nan")
        data, affine = to_ras(data, affine)
        return frontal_horn_width(horn_mask(scheme, data), affine)[0] / self.width_mm


def horn_mask(scheme: LabelScheme, data: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
    """Where the frontal horns are sought: the lateral ventricles (the whole system if the scheme has none); where
    the scheme gives the temporal horns no label of their own, only above the ventricular system's centroid."""
    horns = scheme.lateral_mask(data)
    if scheme.names_temporal_horns:
        return horns
    whole = scheme.masks(data)[WHOLE]
    if whole.any():
        horns[:, :, : int(np.ceil(np.argwhere(whole)[:, 2].mean()))] = False
    return horns


def case_skull(
    reference: Volume,
    scheme: LabelScheme,
    image: Volume | None = None,
    *,
    scalp_mm: float = DEFAULT_SCALP_MM,
    source: str = "image",
) -> CaseSkull:
    """The skull of one case (module docstring); ``image`` is used only for a ventricle-only reference.

    Args:
        reference: the reference label map.
        scheme: how to read it.
        image: the test image of the case (any grid; resampled linearly onto the reference's), or None.
        scalp_mm: scalp + bone thickness per side taken off the head mask's width.
        source: the image's file, for error messages.

    Raises:
        InputError: the image holds no head (:func:`nph.data.head_mask.head_mask`), or one no wider than
            ``2 × scalp_mm``.
    """
    data, affine = to_ras(reference.data, reference.affine)
    z = frontal_horn_width(horn_mask(scheme, data), affine)[1]
    if scheme.full_brain:
        width, origin = skull_width_mm(data != 0, affine, z), "labels"
    elif image is not None:
        head_mm = skull_width_mm(to_ras(_head(reference, image, source), reference.affine)[0], affine, z)
        if head_mm <= 2.0 * scalp_mm:
            raise InputError(
                f"{source}: the head is {head_mm:.1f} mm wide at the frontal horns, no wider than "
                f"twice evans.scalp_mm={scalp_mm:g} (set a smaller evans.scalp_mm)"
            )
        width, origin = head_mm - 2.0 * scalp_mm, "image"
    else:
        width, origin = float("nan"), ""
    width = width if width > 0 else float("nan")
    return CaseSkull(width, origin, CaseSkull(width, origin, float("nan")).evans_of(scheme, data, affine))


def _head(reference: Volume, image: Volume, source: str) -> npt.NDArray[np.bool_]:
    """The image's head mask on the reference's grid."""
    if image.shape != reference.shape or not np.allclose(image.affine, reference.affine, atol=AFFINE_ATOL_MM):
        image = resample_to(image, reference.affine, reference.shape, order=1)
    return head_mask(image.data, spacing_of(reference.affine), source)
