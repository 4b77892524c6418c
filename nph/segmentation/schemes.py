"""Target label schemes for segmentation: all 33 SynthSeg classes, the six ventricles, or ventricles as one class.

A scheme maps nph's contiguous 0..32 labels (labelled dataset folders) onto the classes a network is
trained on, and back to SynthSeg ids so predictions can be measured with :mod:`nph.data.measures`.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import numpy.typing as npt

from nph.data.labels import LABEL_IDS, LABEL_NAMES, VENTRICLE_IDS, contiguous_to_ids, label_id_table
from nph.errors import InputError

__all__ = ["Scheme", "from_contiguous33", "parse_scheme", "scheme_label_ids", "scheme_labels", "to_synthseg_ids"]


class Scheme(str, Enum):
    """Which classes a network learns."""

    ALL33 = "all33"
    VENTRICLES6 = "ventricles6"
    VENTRICLES1 = "ventricles1"


_NAME_OF_ID = dict(zip(LABEL_IDS, LABEL_NAMES, strict=True))


def parse_scheme(value: str, key: str = "scheme") -> Scheme:
    """A :class:`Scheme` from its config string; anything else is an :class:`InputError` listing the choices."""
    try:
        return Scheme(value)
    except ValueError:
        known = ", ".join(s.value for s in Scheme)
        raise InputError(f"{key}={value!r}: unknown label scheme (known: {known})") from None


def scheme_labels(scheme: Scheme) -> dict[str, int]:
    """nnU-Net's ``labels`` table ``{name: class index}`` for the scheme, background first."""
    if scheme is Scheme.ALL33:
        return {name: index for index, name in enumerate(LABEL_NAMES)}
    if scheme is Scheme.VENTRICLES6:
        return {"background": 0, **{_NAME_OF_ID[i]: k + 1 for k, i in enumerate(VENTRICLE_IDS)}}
    return {"background": 0, "ventricles": 1}


def scheme_label_ids(scheme: Scheme) -> dict[str, list[int]]:
    """For each class of the scheme, the SynthSeg ids it stands for (what labels.json records)."""
    if scheme is Scheme.ALL33:
        return {name: [i] for name, i in label_id_table().items()}
    if scheme is Scheme.VENTRICLES6:
        return {"background": [0], **{_NAME_OF_ID[i]: [i] for i in VENTRICLE_IDS}}
    return {"background": [0], "ventricles": list(VENTRICLE_IDS)}


def _lookup(scheme: Scheme) -> npt.NDArray[np.uint8]:
    """Contiguous 0..32 → class index of the scheme (every non-ventricle structure → background)."""
    table = np.zeros(len(LABEL_IDS), dtype=np.uint8)
    if scheme is Scheme.ALL33:
        return np.arange(len(LABEL_IDS), dtype=np.uint8)
    for k, vid in enumerate(VENTRICLE_IDS):
        table[LABEL_IDS.index(vid)] = k + 1 if scheme is Scheme.VENTRICLES6 else 1
    return table


def from_contiguous33(contiguous: npt.NDArray[np.integer], scheme: Scheme) -> npt.NDArray[np.uint8]:
    """Remap a label map stored as contiguous 0..32 to the scheme's class indices."""
    contiguous_to_ids(contiguous)  # range check: raises InputError on values outside 0..32
    return _lookup(scheme)[np.asarray(contiguous, dtype=np.int64)]


def to_synthseg_ids(classes: npt.NDArray[np.integer], scheme: Scheme) -> npt.NDArray[np.int16]:
    """Class indices of the scheme → SynthSeg ids (one class of several ids maps to the first: 4, lateral)."""
    ids = np.asarray([v[0] for v in scheme_label_ids(scheme).values()], dtype=np.int16)
    classes = np.asarray(classes, dtype=np.int64)
    if classes.size and (classes.min() < 0 or classes.max() >= len(ids)):
        raise InputError(f"class indices must lie in 0..{len(ids) - 1} for scheme {scheme.value}")
    return ids[classes]
