"""Label schemes of reference and prediction folders, and how each maps to the ventricular system.

A prediction folder is ``DIR/<case>.nii.gz`` plus ``DIR/labels.json``::

    {"scheme": "synthseg" | "contiguous" | "binary" | "custom", "labels": {name: value, ...}}

``labels`` may be left out for the three built-in schemes (SynthSeg ids; nph's 33 contiguous indices;
``{"background": 0, "ventricles": 1}``). A folder with an nnU-Net ``dataset.json`` (a labelled dataset
folder, whose maps lie in ``labelsTr/``, or an nnU-Net prediction folder) is read as ``contiguous`` with the
names of its ``labels``. Structures are found by SynthSeg 2.0 name (case-insensitive): the six ventricles
of :data:`nph.data.labels.VENTRICLE_IDS`, or one label named ``ventricles`` for the whole system.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nph.data.labels import LABEL_NAMES, LABELS, VENTRICLE_IDS, label_id_table
from nph.errors import InputError
from nph.io.atomic import write_json
from nph.io.nifti import NIFTI_SUFFIXES

__all__ = [
    "LABELS_JSON",
    "VENTRICLE_NAMES",
    "WHOLE",
    "LabelFolder",
    "LabelScheme",
    "Scheme",
    "builtin_scheme",
    "open_label_folder",
    "read_prediction_scheme",
    "write_prediction_folder_labels",
]

LABELS_JSON = "labels.json"
#: Name of the whole ventricular system (the union of the six structures) in every table nph writes.
WHOLE = "ventricles"
VENTRICLE_NAMES: tuple[str, ...] = tuple(label.name for label in LABELS if label.id in VENTRICLE_IDS)
LATERAL_NAMES = ("left lateral ventricle", "right lateral ventricle")
TEMPORAL_HORN_NAMES = ("left inferior lateral ventricle", "right inferior lateral ventricle")


class Scheme(str, Enum):
    """How label values are to be read."""

    SYNTHSEG = "synthseg"
    CONTIGUOUS = "contiguous"
    BINARY = "binary"
    CUSTOM = "custom"


@dataclass(frozen=True)
class LabelScheme:
    """A ``{name: value}`` table and what it says about ventricles, lateral ventricles and the skull."""

    scheme: Scheme
    labels: Mapping[str, int]
    source: str = ""
    _lower: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lower", {name.lower(): int(v) for name, v in self.labels.items()})
        if not self.structures():
            raise InputError(
                f"{self.source or 'label scheme'}: no ventricle label (expected one of {[WHOLE, *VENTRICLE_NAMES]}"
                f" among {sorted(self.labels)})"
            )

    def structures(self) -> dict[str, tuple[int, ...]]:
        """``{structure: values}``: the whole system first, then each of the six ventricles it names."""
        parts = {name: (self._lower[name],) for name in VENTRICLE_NAMES if name in self._lower}
        whole = tuple(v for values in parts.values() for v in values)
        if WHOLE in self._lower:
            whole = (*whole, self._lower[WHOLE])
        return {WHOLE: whole, **parts} if whole else {}

    @property
    def full_brain(self) -> bool:
        """True when the map labels tissue beyond the ventricles: its non-zero voxels are the ICV."""
        ventricle_values = set(self.structures()[WHOLE])
        return any(v != 0 and v not in ventricle_values for v in self._lower.values())

    def masks(self, data: npt.NDArray[np.integer]) -> dict[str, npt.NDArray[np.bool_]]:
        """One boolean mask per structure of :meth:`structures`."""
        return {name: np.isin(data, values) for name, values in self.structures().items()}

    @property
    def names_temporal_horns(self) -> bool:
        """True when the temporal horns are labels of their own (SynthSeg's inferior lateral ventricles), so the
        scheme's lateral ventricles hold no temporal horn."""
        return any(name in self._lower for name in TEMPORAL_HORN_NAMES)

    def lateral_mask(self, data: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
        """The lateral ventricles where the scheme has them, else the whole ventricular system."""
        values = [self._lower[name] for name in LATERAL_NAMES if name in self._lower]
        return np.isin(data, values or list(self.structures()[WHOLE]))

    def check_values(self, data: npt.NDArray[np.integer], path: Path) -> None:
        """Raise :class:`InputError` if the map holds values the table does not name."""
        unknown = sorted(set(np.unique(data).tolist()) - set(self._lower.values()) - {0})
        if unknown:
            raise InputError(f"{path}: values {unknown[:10]} are not in its '{self.scheme.value}' label table")


def builtin_scheme(scheme: str | Scheme, labels: Mapping[str, Any] | None = None, source: str = "") -> LabelScheme:
    """The table of a scheme name, with ``labels`` overriding (and required for ``custom``)."""
    try:
        kind = Scheme(str(scheme.value if isinstance(scheme, Scheme) else scheme).lower())
    except ValueError:
        known = [s.value for s in Scheme]
        raise InputError(f"{source or 'scheme'}: unknown scheme '{scheme}' (known: {known})") from None
    if labels:
        return LabelScheme(kind, _int_table(labels, source), source)
    defaults = {
        Scheme.SYNTHSEG: label_id_table(),
        Scheme.CONTIGUOUS: {name: index for index, name in enumerate(LABEL_NAMES)},
        Scheme.BINARY: {"background": 0, WHOLE: 1},
    }
    if kind not in defaults:
        raise InputError(f"{source or 'scheme'}: scheme 'custom' needs a 'labels' table {{name: value}}")
    return LabelScheme(kind, defaults[kind], source)


def _int_table(labels: Mapping[str, Any], source: str) -> dict[str, int]:
    """Check a ``{name: integer}`` table (nnU-Net region labels, lists, are not label maps)."""
    table: dict[str, int] = {}
    for name, value in labels.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{source}: label '{name}' has value {value!r}; expected one integer")
        table[str(name)] = value
    return table


def write_prediction_folder_labels(
    folder: str | Path, scheme: str | Scheme, labels: Mapping[str, int] | None = None
) -> Path:
    """Write ``folder/labels.json`` naming how the folder's label maps are to be read (checked first)."""
    path = Path(folder) / LABELS_JSON
    table = builtin_scheme(scheme, labels, source=str(path))
    return write_json(path, {"scheme": table.scheme.value, "labels": dict(table.labels)})


def read_prediction_scheme(folder: str | Path) -> LabelScheme:
    """The scheme of a prediction folder: ``labels.json``, else an nnU-Net ``dataset.json``."""
    folder = Path(folder)
    labels_json, dataset_json = folder / LABELS_JSON, folder / "dataset.json"
    if labels_json.is_file():
        content = _read_json(labels_json)
        if "scheme" not in content:
            raise InputError(f"{labels_json}: lacks the key 'scheme' (one of {[s.value for s in Scheme]})")
        return builtin_scheme(content["scheme"], content.get("labels"), source=str(labels_json))
    if dataset_json.is_file():
        content = _read_json(dataset_json)
        if not isinstance(content.get("labels"), dict):
            raise InputError(f"{dataset_json}: lacks a 'labels' table")
        return builtin_scheme(Scheme.CONTIGUOUS, content["labels"], source=str(dataset_json))
    raise InputError(f"{folder}: neither {LABELS_JSON} nor dataset.json says how to read its labels")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(content, dict):
        raise InputError(f"{path}: expected a JSON object")
    return content


@dataclass(frozen=True)
class LabelFolder:
    """A folder of label maps: its scheme and ``{case_id: file}``."""

    root: Path
    scheme: LabelScheme
    cases: dict[str, Path]


def open_label_folder(folder: str | Path, scheme: str | None = None, *, name: str = "folder") -> LabelFolder:
    """Open a prediction folder or a labelled dataset folder (maps in ``labelsTr/``).

    Args:
        folder: the folder.
        scheme: a built-in scheme name that overrides what the folder declares.
        name: what the folder is (``reference``, a method name) for error messages.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{name}: {root} is not a folder")
    maps_dir = root / "labelsTr" if (root / "labelsTr").is_dir() else root
    table = builtin_scheme(scheme, source=f"{name} scheme") if scheme else read_prediction_scheme(root)
    cases = {}
    for path in sorted(maps_dir.iterdir()):
        suffix = next((s for s in NIFTI_SUFFIXES if path.name.endswith(s)), None)
        if suffix and path.is_file() and not path.name.startswith("."):
            cases[path.name[: -len(suffix)]] = path
    if not cases:
        raise InputError(f"{name}: {maps_dir} holds no label maps ({', '.join(NIFTI_SUFFIXES)})")
    return LabelFolder(root, table, cases)
