"""SynthSeg 2.0's 33 labels: ids, names, groups, and conversions between id schemes.

Three schemes meet in nph: SynthSeg/FreeSurfer ids (0, 2, 3, ..., 60) in label maps that users
bring; contiguous indices 0..32 (nnU-Net's labelsTr, network outputs); one-hot channels.
FreeSurfer ``aseg`` maps hold ids that SynthSeg lacks; :data:`ASEG_TO_SYNTHSEG` folds them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from nph.errors import InputError

__all__ = [
    "ASEG_TO_SYNTHSEG",
    "HEMISPHERE_RESOLVED_ASEG",
    "LABELS",
    "LABEL_IDS",
    "LABEL_NAMES",
    "NUM_CLASSES",
    "VENTRICLE_IDS",
    "Label",
    "TissueGroup",
    "aseg_to_synthseg",
    "check_ids",
    "contiguous_to_ids",
    "ids_to_contiguous",
    "label_id_table",
    "one_hot",
    "ventricle_mask",
]


class TissueGroup(str, Enum):
    """Coarse tissue classes: what an MRI contrast can tell apart (used by phantoms and randomisers)."""

    BACKGROUND = "background"
    WHITE_MATTER = "white matter"
    CORTEX = "cortex"
    DEEP_GREY = "deep grey matter"
    VENTRICLE = "ventricle"
    CSF = "csf"
    CEREBELLUM_WM = "cerebellum white matter"
    CEREBELLUM_GM = "cerebellum cortex"
    BRAINSTEM = "brainstem"


@dataclass(frozen=True)
class Label:
    """One SynthSeg structure: FreeSurfer id, SynthSeg's name, hemisphere (L/R/-), tissue group."""

    id: int
    name: str
    hemisphere: str
    group: TissueGroup


_G = TissueGroup
LABELS: tuple[Label, ...] = (
    Label(0, "background", "-", _G.BACKGROUND),
    Label(2, "left cerebral white matter", "L", _G.WHITE_MATTER),
    Label(3, "left cerebral cortex", "L", _G.CORTEX),
    Label(4, "left lateral ventricle", "L", _G.VENTRICLE),
    Label(5, "left inferior lateral ventricle", "L", _G.VENTRICLE),
    Label(7, "left cerebellum white matter", "L", _G.CEREBELLUM_WM),
    Label(8, "left cerebellum cortex", "L", _G.CEREBELLUM_GM),
    Label(10, "left thalamus", "L", _G.DEEP_GREY),
    Label(11, "left caudate", "L", _G.DEEP_GREY),
    Label(12, "left putamen", "L", _G.DEEP_GREY),
    Label(13, "left pallidum", "L", _G.DEEP_GREY),
    Label(14, "3rd ventricle", "-", _G.VENTRICLE),
    Label(15, "4th ventricle", "-", _G.VENTRICLE),
    Label(16, "brain-stem", "-", _G.BRAINSTEM),
    Label(17, "left hippocampus", "L", _G.DEEP_GREY),
    Label(18, "left amygdala", "L", _G.DEEP_GREY),
    Label(24, "csf", "-", _G.CSF),
    Label(26, "left accumbens area", "L", _G.DEEP_GREY),
    Label(28, "left ventral DC", "L", _G.DEEP_GREY),
    Label(41, "right cerebral white matter", "R", _G.WHITE_MATTER),
    Label(42, "right cerebral cortex", "R", _G.CORTEX),
    Label(43, "right lateral ventricle", "R", _G.VENTRICLE),
    Label(44, "right inferior lateral ventricle", "R", _G.VENTRICLE),
    Label(46, "right cerebellum white matter", "R", _G.CEREBELLUM_WM),
    Label(47, "right cerebellum cortex", "R", _G.CEREBELLUM_GM),
    Label(49, "right thalamus", "R", _G.DEEP_GREY),
    Label(50, "right caudate", "R", _G.DEEP_GREY),
    Label(51, "right putamen", "R", _G.DEEP_GREY),
    Label(52, "right pallidum", "R", _G.DEEP_GREY),
    Label(53, "right hippocampus", "R", _G.DEEP_GREY),
    Label(54, "right amygdala", "R", _G.DEEP_GREY),
    Label(58, "right accumbens area", "R", _G.DEEP_GREY),
    Label(60, "right ventral DC", "R", _G.DEEP_GREY),
)
LABEL_IDS: tuple[int, ...] = tuple(label.id for label in LABELS)
LABEL_NAMES: tuple[str, ...] = tuple(label.name for label in LABELS)
NUM_CLASSES = len(LABELS)
#: Lateral (L/R), inferior lateral (L/R), 3rd and 4th ventricles: the ventricular system.
VENTRICLE_IDS: tuple[int, ...] = (4, 5, 14, 15, 43, 44)

_MAX_ID = max(LABEL_IDS)
_ID_TO_INDEX = np.full(_MAX_ID + 1, -1, dtype=np.int16)
_ID_TO_INDEX[list(LABEL_IDS)] = np.arange(NUM_CLASSES)
_INDEX_TO_ID = np.asarray(LABEL_IDS, dtype=np.int16)


def label_id_table() -> dict[str, int]:
    """The ``{name: FreeSurfer id}`` table that dataset.json stores under ``nph.label_ids``."""
    return {label.name: label.id for label in LABELS}


def check_ids(label_ids: npt.NDArray[np.integer], source: str = "label map") -> None:
    """Raise :class:`InputError` naming every id in ``label_ids`` that is not one of the 33."""
    present = np.unique(label_ids)
    unknown = [int(v) for v in present if v < 0 or v > _MAX_ID or _ID_TO_INDEX[int(v)] < 0]
    if unknown:
        raise InputError(f"{source}: label ids {unknown} are not SynthSeg 2.0 ids (known: {list(LABEL_IDS)})")


def ids_to_contiguous(label_ids: npt.NDArray[np.integer], source: str = "label map") -> npt.NDArray[np.uint8]:
    """SynthSeg ids → contiguous indices 0..32 (the order of :data:`LABELS`)."""
    check_ids(label_ids, source)
    return _ID_TO_INDEX[np.asarray(label_ids, dtype=np.int64)].astype(np.uint8)


def contiguous_to_ids(indices: npt.NDArray[np.integer]) -> npt.NDArray[np.int16]:
    """Contiguous indices 0..32 → SynthSeg ids; an index out of range is an error."""
    indices = np.asarray(indices)
    if indices.size and (indices.min() < 0 or indices.max() >= NUM_CLASSES):
        lo, hi = indices.min(), indices.max()
        raise InputError(f"contiguous label indices must lie in 0..{NUM_CLASSES - 1}, got {lo}..{hi}")
    return _INDEX_TO_ID[indices.astype(np.int64)]


def one_hot(indices: npt.NDArray[np.integer], num_classes: int = NUM_CLASSES) -> npt.NDArray[np.float32]:
    """Contiguous indices of shape (...) → float one-hot of shape (num_classes, ...)."""
    indices = np.asarray(indices, dtype=np.int64)
    return (np.arange(num_classes).reshape((-1,) + (1,) * indices.ndim) == indices[None]).astype(np.float32)


def ventricle_mask(label_ids: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
    """Voxels of the ventricular system in a SynthSeg-id label map."""
    return np.isin(label_ids, VENTRICLE_IDS)


# FreeSurfer aseg / aparc+aseg ids that SynthSeg 2.0 does not segment, and where SynthSeg puts that
# tissue. Ids present in both schemes map to themselves. Rationale per entry:
ASEG_TO_SYNTHSEG: dict[int, int] = {
    1: 3, 40: 42,  # cerebral exterior: the cortical ribbon
    6: 8, 45: 47,  # cerebellum exterior: cerebellar cortex
    9: 10, 48: 49,  # "Thalamus" (FS ≥ 7) vs "Thalamus-Proper": the same structure
    19: 3, 55: 42,  # insula: cortex
    20: 3, 56: 42,  # operculum: cortex
    25: 2, 57: 41,  # lesion: white matter (where lesions mostly lie)
    27: 28, 59: 60,  # substantia nigra: ventral DC, as in SynthSeg's training maps
    29: 2, 61: 41,  # undetermined: white matter
    30: 2, 62: 41,  # vessel: white matter (SynthSeg has no vessel class)
    31: 4, 63: 43,  # choroid plexus: lies inside the lateral ventricle and is counted with it
    72: 24,  # 5th ventricle (cavum septi pellucidi): CSF, not part of the ventricular system
    78: 2, 79: 41,  # left/right WM hypointensities: white matter
    81: 3, 82: 42,  # left/right non-WM hypointensities: cortex
    **{i: 3 for i in range(1000, 1036)},  # aparc left cortex parcels
    **{i: 42 for i in range(2000, 2036)},  # aparc right cortex parcels
    **{i: 2 for i in range(3000, 3036)},  # wmparc left WM parcels
    **{i: 41 for i in range(4000, 4036)},  # wmparc right WM parcels
    5001: 2, 5002: 41,  # unsegmented white matter
}
#: Midline ids with no hemisphere in their id: each voxel takes the label of its nearest hemisphere
#: (distance to the nearest left/right structure), so the left/right split stays anatomical.
HEMISPHERE_RESOLVED_ASEG: dict[int, tuple[int, int]] = {
    77: (2, 41),  # WM hypointensities → left/right cerebral white matter
    80: (3, 42),  # non-WM hypointensities → left/right cortex
    85: (28, 60),  # optic chiasm → left/right ventral DC
    **{i: (2, 41) for i in range(251, 256)},  # corpus callosum (posterior..anterior) → cerebral white matter
}


def aseg_to_synthseg(label_ids: npt.NDArray[np.integer], source: str = "label map") -> npt.NDArray[np.int16]:
    """Fold a FreeSurfer aseg/aparc+aseg map into SynthSeg's 33 ids; unknown ids raise :class:`InputError`."""
    out = np.asarray(label_ids).astype(np.int32, copy=True)
    for fs_id in np.unique(out):
        if int(fs_id) in ASEG_TO_SYNTHSEG:
            out[out == fs_id] = ASEG_TO_SYNTHSEG[int(fs_id)]
    midline = np.isin(out, list(HEMISPHERE_RESOLVED_ASEG))
    if midline.any():
        out = _resolve_hemispheres(out, midline)
    check_ids(out, source)
    return out.astype(np.int16)


def _resolve_hemispheres(out: npt.NDArray[np.int32], midline: npt.NDArray[np.bool_]) -> npt.NDArray[np.int32]:
    """Give each midline voxel the left or right target of its id, by its nearest lateralised voxel."""
    left_ids = [label.id for label in LABELS if label.hemisphere == "L"]
    right_ids = [label.id for label in LABELS if label.hemisphere == "R"]
    dist_left = ndimage.distance_transform_edt(~np.isin(out, left_ids))
    dist_right = ndimage.distance_transform_edt(~np.isin(out, right_ids))
    left_side = dist_left <= dist_right
    for fs_id, (left_target, right_target) in HEMISPHERE_RESOLVED_ASEG.items():
        voxels = out == fs_id
        if voxels.any():
            out[voxels & left_side] = left_target
            out[voxels & ~left_side] = right_target
    return out
