"""Which ids a user's label map holds (``label_scheme``), and its conversion to what nph stores.

``synthseg`` and ``aseg`` maps become SynthSeg's 33 ids; a ``ventricles`` map (expert mask: 0 background,
any non-zero id ventricle) becomes 0/1. ``auto`` decides only where one reading is plausible: a map with few
distinct ids looks like a mask and could be read as ventricles or as aseg/SynthSeg ids, so it is refused.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import numpy.typing as npt

from nph.data.dataset import SYNTHSEG, VENTRICLES
from nph.data.labels import LABEL_IDS, aseg_to_synthseg, check_ids
from nph.errors import InputError

__all__ = ["MAX_MASK_IDS", "LabelScheme", "stored_scheme", "to_stored_ids"]

#: A map with at most this many distinct non-zero ids looks like a mask (a whole-brain SynthSeg or aseg map
#: holds 20 or more structures); ``auto`` refuses it.
MAX_MASK_IDS = 4


class LabelScheme(str, Enum):
    """The ids of the label maps: SynthSeg's 33, FreeSurfer aseg, a ventricle mask, or decide per map."""

    AUTO = "auto"
    SYNTHSEG = "synthseg"
    ASEG = "aseg"
    VENTRICLES = "ventricles"


def stored_scheme(scheme: LabelScheme) -> str:
    """The dataset folder's scheme for maps read with ``scheme``: ventricles only, or SynthSeg's 33 labels."""
    return VENTRICLES if scheme is LabelScheme.VENTRICLES else SYNTHSEG


def to_stored_ids(
    ids: npt.NDArray[np.integer], scheme: LabelScheme, source: str
) -> tuple[npt.NDArray[np.int16], LabelScheme]:
    """Convert a label map to SynthSeg ids (or 0/1 for ``ventricles``); returns it and the scheme it was read as.

    Raises:
        InputError: negative ids; ids the scheme does not know; under ``auto``, a map that looks like a mask.
    """
    present = np.unique(ids)
    if present.size and present[0] < 0:
        raise InputError(f"{source}: label map has negative values (e.g. {int(present[0])})")
    if scheme is LabelScheme.AUTO:
        scheme = _decide(present, source)
    if scheme is LabelScheme.VENTRICLES:
        if present.size == 1 and present[0] == 0:
            raise InputError(f"{source}: ventricle mask is empty (all voxels 0)")
        return (np.asarray(ids) != 0).astype(np.int16), scheme
    if scheme is LabelScheme.SYNTHSEG:
        check_ids(ids, source)
        return np.asarray(ids).astype(np.int16), scheme
    return aseg_to_synthseg(ids, source), scheme


def _decide(present: npt.NDArray[np.integer], source: str) -> LabelScheme:
    nonzero = [int(v) for v in present if v != 0]
    if len(nonzero) <= MAX_MASK_IDS:
        readings = "label_scheme=ventricles (0 background, any other value ventricle)"
        if set(nonzero) <= set(LABEL_IDS):
            readings += ", label_scheme=synthseg"
        readings += " or label_scheme=aseg (FreeSurfer ids, e.g. 1 = left cerebral exterior)"
        raise InputError(
            f"{source}: label ids {[0, *nonzero] if 0 in present else nonzero} look like a mask, "
            f"not a whole-brain segmentation; label_scheme=auto will not guess: choose {readings}"
        )
    return LabelScheme.SYNTHSEG if set(nonzero) <= set(LABEL_IDS) else LabelScheme.ASEG
