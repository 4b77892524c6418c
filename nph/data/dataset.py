"""The labelled dataset folder (DESIGN.md): an nnU-Net v2 raw dataset plus nph's manifest.

``DIR/dataset.json``, ``DIR/imagesTr/<case>_0000.nii.gz``, ``DIR/labelsTr/<case>.nii.gz`` (contiguous
0..32) and ``DIR/manifest.csv`` (one row per case with its measurements and provenance).
A ventricle-only dataset (``label_scheme=ventricles``: expert masks, 0 background / 1 ventricle) has no ICV:
its manifest leaves icv_ml, ventricle_fraction and evans_index empty. An image-only folder (test scans,
``nph ingest`` without labels) keeps its images in ``DIR/imagesTs/`` and has no labelsTr/.
:class:`DatasetPaths` owns the layout; :func:`write_case` and :func:`finalize` write it;
:class:`LabelledDataset` opens and checks it; :func:`image_cases` lists the images of any of these folders.
"""

from __future__ import annotations

import io
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nph import __version__
from nph.data.labels import LABEL_NAMES, contiguous_to_ids, ids_to_contiguous, label_id_table, ventricle_mask
from nph.data.measures import Measurements, measure, voxel_volume_ml
from nph.errors import InputError
from nph.io.atomic import write_json, write_text
from nph.io.nifti import Volume, check_pair, load_volume, save_volume

__all__ = [
    "MANIFEST_COLUMNS",
    "SYNTHSEG",
    "VENTRICLES",
    "VENTRICLE_LABELS",
    "DatasetPaths",
    "LabelledDataset",
    "dataset_label_scheme",
    "finalize",
    "image_cases",
    "read_manifest",
    "write_case",
    "write_test_case",
]

FILE_ENDING = ".nii.gz"
#: nnU-Net's channel suffix of an image file name.
CHANNEL_SUFFIX = "_0000"
#: Measured columns every manifest starts with; provenance columns follow.
MANIFEST_COLUMNS = ("case_id", "image", "label", "ventricle_ml", "icv_ml", "ventricle_fraction", "evans_index")
_MEASURE_COLUMNS = MANIFEST_COLUMNS[3:]
#: Label schemes of a dataset folder: SynthSeg's 33 labels, or ventricles only (no ICV, no Evans index).
SYNTHSEG = "synthseg"
VENTRICLES = "ventricles"
#: dataset.json "labels" of a ventricle-only dataset.
VENTRICLE_LABELS = {"background": 0, "ventricles": 1}


class DatasetPaths:
    """Where each file of a labelled dataset folder lives."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def dataset_json(self) -> Path:
        return self.root / "dataset.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    @property
    def images_dir(self) -> Path:
        return self.root / "imagesTr"

    @property
    def labels_dir(self) -> Path:
        return self.root / "labelsTr"

    @property
    def test_images_dir(self) -> Path:
        return self.root / "imagesTs"

    def image(self, case_id: str) -> Path:
        return self.images_dir / f"{case_id}{CHANNEL_SUFFIX}{FILE_ENDING}"

    def test_image(self, case_id: str) -> Path:
        return self.test_images_dir / f"{case_id}{CHANNEL_SUFFIX}{FILE_ENDING}"

    def label(self, case_id: str) -> Path:
        return self.labels_dir / f"{case_id}{FILE_ENDING}"


def write_case(
    paths: DatasetPaths,
    case_id: str,
    label_ids: npt.NDArray[np.integer],
    affine: npt.NDArray,
    image: npt.NDArray[np.floating] | None = None,
    provenance: Mapping[str, Any] | None = None,
    *,
    scheme: str = SYNTHSEG,
) -> dict[str, Any]:
    """Write one case (label map in SynthSeg ids, or 0/non-zero for ``scheme="ventricles"``; optional float
    image) and return its manifest row.

    The label is stored as contiguous uint8 indices (0..32, or 0/1); the image as float32. Both atomically.
    """
    if scheme == VENTRICLES:
        contiguous = (np.asarray(label_ids) != 0).astype(np.uint8)
        measures = _ventricle_only_measures(contiguous, affine)
    else:
        contiguous = ids_to_contiguous(label_ids, source=f"case {case_id}")
        measures = measure(label_ids, affine)
    if image is not None:
        if image.shape != label_ids.shape:
            raise InputError(f"case {case_id}: image shape {image.shape} differs from label shape {label_ids.shape}")
        save_volume(paths.image(case_id), image, affine, dtype=np.float32)
    save_volume(paths.label(case_id), contiguous, affine, dtype=np.uint8)
    row: dict[str, Any] = {
        "case_id": case_id,
        "image": str(paths.image(case_id).relative_to(paths.root)) if image is not None else "",
        "label": str(paths.label(case_id).relative_to(paths.root)),
        **asdict(measures),
    }
    row.update(provenance or {})
    return row


def _ventricle_only_measures(mask: npt.NDArray[np.uint8], affine: npt.NDArray) -> Measurements:
    """A ventricle mask gives the ventricle volume only: without the ICV there is no fraction or Evans index."""
    nan = float("nan")
    return Measurements(float(mask.sum()) * voxel_volume_ml(affine), nan, nan, nan)


def write_test_case(
    paths: DatasetPaths, case_id: str, image: npt.NDArray[np.floating], affine: npt.NDArray,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write one unlabelled image to ``imagesTs/`` (atomically) and return its manifest row (no measures)."""
    save_volume(paths.test_image(case_id), image, affine, dtype=np.float32)
    row: dict[str, Any] = {"case_id": case_id, "image": str(paths.test_image(case_id).relative_to(paths.root)),
                           "label": "", **dict.fromkeys(_MEASURE_COLUMNS, float("nan"))}
    row.update(provenance or {})
    return row


def finalize(
    paths: DatasetPaths,
    rows: Iterable[Mapping[str, Any]],
    *,
    modality: str = "MRI",
    description: str = "",
    extra: Mapping[str, Any] | None = None,
    scheme: str | None = SYNTHSEG,
) -> pd.DataFrame:
    """Write manifest.csv (sorted by case id) and dataset.json for the given rows; return the manifest.

    ``scheme`` is the label scheme of the rows (:data:`SYNTHSEG` or :data:`VENTRICLES`), or ``None`` for an
    image-only folder.
    """
    manifest = pd.DataFrame(list(rows))
    if manifest.empty:
        raise InputError(f"{paths.root}: no cases to write")
    manifest = manifest.sort_values("case_id").reset_index(drop=True)
    extra_columns = [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    manifest = manifest[list(MANIFEST_COLUMNS) + extra_columns]
    buffer = io.StringIO()
    manifest.to_csv(buffer, index=False)
    write_text(paths.manifest, buffer.getvalue())
    has_images = bool((manifest["image"].fillna("") != "").any())
    info = _dataset_json(len(manifest), modality, has_images, description, extra, scheme)
    write_json(paths.dataset_json, info)
    return manifest


def _dataset_json(
    num_cases: int, modality: str, has_images: bool, description: str, extra: Mapping[str, Any] | None,
    scheme: str | None,
) -> dict[str, Any]:
    nph = {"has_images": has_images, "has_labels": scheme is not None, "label_scheme": scheme,
           "nph_version": __version__, **(dict(extra) if extra else {})}
    info: dict[str, Any] = {"channel_names": {"0": modality}}
    if scheme is None:
        return {**info, "numTest": num_cases, "file_ending": FILE_ENDING, "description": description, "nph": nph}
    labels = VENTRICLE_LABELS if scheme == VENTRICLES else {name: index for index, name in enumerate(LABEL_NAMES)}
    nph["label_ids"] = dict(VENTRICLE_LABELS) if scheme == VENTRICLES else label_id_table()
    return {**info, "labels": dict(labels), "numTraining": num_cases, "file_ending": FILE_ENDING,
            "description": description, "nph": nph}


def _case_of(path: Path) -> str:
    stem = path.name.removesuffix(".nii.gz").removesuffix(".nii")
    return stem.removesuffix(CHANNEL_SUFFIX)


def image_cases(root: str | Path) -> dict[str, Path]:
    """``{case: image}`` of a labelled dataset folder (imagesTr/), an image-only folder (imagesTs/) or a plain
    folder of NIfTI images; ``<case>_0000.nii.gz`` and ``<case>.nii.gz`` both name case ``<case>``.

    Raises:
        InputError: the folder is missing, holds no .nii/.nii.gz image, or two files name one case.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: input folder not found")
    paths = DatasetPaths(root)
    folder = next((d for d in (paths.images_dir, paths.test_images_dir) if d.is_dir()), root)
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".nii.gz", ".nii")) and not p.name.startswith("."))
    if not files:
        where = "" if folder != root else " (nor an imagesTr/ or imagesTs/ folder)"
        raise InputError(f"{folder}: no .nii/.nii.gz images{where}")
    images: dict[str, Path] = {}
    for path in files:
        case = _case_of(path)
        if case in images:
            raise InputError(f"{path}: case '{case}' appears twice (also {images[case].name})")
        images[case] = path
    return images


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest.csv, keeping case ids as strings."""
    try:
        manifest = pd.read_csv(path, dtype={"case_id": str, "image": str, "label": str}, keep_default_na=False,
                               na_values={key: [""] for key in _MEASURE_COLUMNS})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: cannot read manifest ({err})") from err
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise InputError(f"{path}: manifest lacks columns {missing}")
    for column in _MEASURE_COLUMNS:
        if manifest[column].dtype == object:
            raise InputError(f"{path}: column {column} holds values that are neither numbers nor empty")
    return manifest


def _read_info(root: Path) -> dict[str, Any]:
    path = DatasetPaths(root).dataset_json
    if not path.is_file():
        raise InputError(f"{path}: missing (is {root} a labelled dataset folder?)")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(info, dict) or not isinstance(info.get("nph", {}), dict):
        raise InputError(f"{path}: not a dataset.json object with an 'nph' section")
    return info


def _scheme_of(info: Mapping[str, Any]) -> str | None:
    nph = info.get("nph", {})
    if nph.get("has_labels", True) is False:
        return None
    return str(nph.get("label_scheme") or SYNTHSEG)


def dataset_label_scheme(root: str | Path) -> str | None:
    """The label scheme a dataset folder declares: :data:`SYNTHSEG`, :data:`VENTRICLES`, or ``None`` (images only).

    Raises:
        InputError: no readable dataset.json in ``root``.
    """
    return _scheme_of(_read_info(Path(root)))


class LabelledDataset:
    """A checked, read-only view of a labelled dataset folder.

    Args:
        root: the folder.
        schemes: the label schemes the caller handles; a folder with another scheme (or an image-only
            folder) is refused with a message that says why. Default: SynthSeg's 33 labels only.
    """

    def __init__(self, root: str | Path, schemes: Collection[str] = (SYNTHSEG,)) -> None:
        self.paths = DatasetPaths(root)
        self.info = self._read_dataset_json(schemes)
        self.manifest = read_manifest(self.paths.manifest) if self.paths.manifest.is_file() else self._no_manifest()
        if self.manifest.empty:
            raise InputError(f"{self.paths.manifest}: the dataset has no cases")

    def _no_manifest(self) -> pd.DataFrame:
        raise InputError(f"{self.paths.manifest}: missing (is {self.paths.root} a labelled dataset folder?)")

    def _read_dataset_json(self, schemes: Collection[str]) -> dict[str, Any]:
        path = self.paths.dataset_json
        info = _read_info(self.paths.root)
        scheme = _scheme_of(info)
        if scheme is None:
            raise InputError(f"{self.paths.root}: an image-only folder (nph ingest without labels) has no label maps;"
                             " use it as input= of nph nnunet predict or nph synthseg")
        if scheme not in schemes:
            what = "a ventricle-only dataset (no ICV, no other structures)" if scheme == VENTRICLES else scheme
            raise InputError(f"{path}: {what} (label_scheme={scheme}); this step needs label_scheme "
                             f"{' or '.join(schemes)}")
        if scheme == VENTRICLES:
            if info.get("labels") != VENTRICLE_LABELS:
                raise InputError(f"{path}: 'labels' is not nph's ventricle-only table {VENTRICLE_LABELS}")
            return info
        expected = {name: index for index, name in enumerate(LABEL_NAMES)}
        if info.get("labels") != expected:
            raise InputError(f"{path}: 'labels' is not nph's 33-class SynthSeg table")
        if info.get("nph", {}).get("label_ids") != label_id_table():
            raise InputError(f"{path}: 'nph.label_ids' does not match SynthSeg 2.0's ids")
        return info

    @property
    def label_scheme(self) -> str:
        """:data:`SYNTHSEG` (33 labels) or :data:`VENTRICLES` (0 background, 1 ventricle)."""
        return _scheme_of(self.info) or SYNTHSEG

    @property
    def case_ids(self) -> list[str]:
        return list(self.manifest["case_id"])

    @property
    def has_images(self) -> bool:
        return bool(self.info["nph"].get("has_images", False))

    def __len__(self) -> int:
        return len(self.manifest)

    def label(self, case_id: str) -> Volume:
        """The case's label map in SynthSeg ids (int16), RAS+; for a ventricle-only dataset 0/1 (1 = ventricle)."""
        volume = load_volume(self.paths.label(case_id), integer=True)
        if self.label_scheme == VENTRICLES:
            volume.data = volume.data.astype(np.int16)
        else:
            volume.data = contiguous_to_ids(volume.data)
        return volume

    def ventricles(self, case_id: str) -> Volume:
        """The case's ventricular system as a boolean mask, in either scheme."""
        volume = self.label(case_id)
        mask = volume.data != 0 if self.label_scheme == VENTRICLES else ventricle_mask(volume.data)
        return Volume(mask, volume.affine)

    def label_contiguous(self, case_id: str) -> Volume:
        """The case's label map as stored: contiguous indices 0..32."""
        return load_volume(self.paths.label(case_id), integer=True)

    def image(self, case_id: str) -> Volume:
        """The case's image (float32), checked against its label's geometry."""
        image_path, label_path = self.paths.image(case_id), self.paths.label(case_id)
        image = load_volume(image_path)
        label = load_volume(label_path, integer=True)
        check_pair(image, label, image_path=image_path, label_path=label_path)
        image.data = image.data.astype(np.float32, copy=False)
        return image
