"""The labelled dataset folder (DESIGN.md): an nnU-Net v2 raw dataset plus nph's manifest.

``DIR/dataset.json``, ``DIR/imagesTr/<case>_0000.nii.gz``, ``DIR/labelsTr/<case>.nii.gz`` (contiguous
0..32) and ``DIR/manifest.csv`` (one row per case with its measurements and provenance).
An image-only folder (test scans, ``nph ingest`` without labels) keeps its images in ``DIR/imagesTs/``.
:class:`DatasetPaths` owns the layout; :func:`write_case` and :func:`finalize` write it;
:class:`LabelledDataset` opens and checks it; :func:`image_cases` lists the images of any of these folders.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from nph import __version__
from nph.data.labels import LABEL_NAMES, contiguous_to_ids, ids_to_contiguous, label_id_table
from nph.data.measures import measure
from nph.errors import InputError
from nph.io.atomic import write_json, write_text
from nph.io.nifti import Volume, check_pair, load_volume, save_volume

__all__ = [
    "MANIFEST_COLUMNS",
    "DatasetPaths",
    "LabelledDataset",
    "finalize",
    "image_cases",
    "read_manifest",
    "write_case",
]

FILE_ENDING = ".nii.gz"
#: nnU-Net's channel suffix of an image file name.
CHANNEL_SUFFIX = "_0000"
#: Measured columns every manifest starts with; provenance columns follow.
MANIFEST_COLUMNS = ("case_id", "image", "label", "ventricle_ml", "icv_ml", "ventricle_fraction", "evans_index")


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
) -> dict[str, Any]:
    """Write one case (label map in SynthSeg ids, optional float image) and return its manifest row.

    The label is stored as contiguous uint8 indices; the image as float32. Both atomically.
    """
    contiguous = ids_to_contiguous(label_ids, source=f"case {case_id}")
    if image is not None:
        if image.shape != label_ids.shape:
            raise InputError(f"case {case_id}: image shape {image.shape} differs from label shape {label_ids.shape}")
        save_volume(paths.image(case_id), image, affine, dtype=np.float32)
    save_volume(paths.label(case_id), contiguous, affine, dtype=np.uint8)
    row: dict[str, Any] = {
        "case_id": case_id,
        "image": str(paths.image(case_id).relative_to(paths.root)) if image is not None else "",
        "label": str(paths.label(case_id).relative_to(paths.root)),
        **asdict(measure(label_ids, affine)),
    }
    row.update(provenance or {})
    return row


def finalize(
    paths: DatasetPaths,
    rows: Iterable[Mapping[str, Any]],
    *,
    modality: str = "MRI",
    description: str = "",
    extra: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Write manifest.csv (sorted by case id) and dataset.json for the given rows; return the manifest."""
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
    write_json(paths.dataset_json, _dataset_json(len(manifest), modality, has_images, description, extra))
    return manifest


def _dataset_json(
    num_cases: int, modality: str, has_images: bool, description: str, extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {
        "channel_names": {"0": modality},
        "labels": {name: index for index, name in enumerate(LABEL_NAMES)},
        "numTraining": num_cases,
        "file_ending": FILE_ENDING,
        "description": description,
        "nph": {
            "label_ids": label_id_table(),
            "has_images": has_images,
            "nph_version": __version__,
            **(dict(extra) if extra else {}),
        },
    }


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
        manifest = pd.read_csv(path, dtype={"case_id": str, "image": str, "label": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: cannot read manifest ({err})") from err
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise InputError(f"{path}: manifest lacks columns {missing}")
    return manifest


class LabelledDataset:
    """A checked, read-only view of a labelled dataset folder."""

    def __init__(self, root: str | Path) -> None:
        self.paths = DatasetPaths(root)
        self.info = self._read_dataset_json()
        self.manifest = read_manifest(self.paths.manifest) if self.paths.manifest.is_file() else self._no_manifest()
        if self.manifest.empty:
            raise InputError(f"{self.paths.manifest}: the dataset has no cases")

    def _no_manifest(self) -> pd.DataFrame:
        raise InputError(f"{self.paths.manifest}: missing (is {self.paths.root} a labelled dataset folder?)")

    def _read_dataset_json(self) -> dict[str, Any]:
        path = self.paths.dataset_json
        if not path.is_file():
            raise InputError(f"{path}: missing (is {self.paths.root} a labelled dataset folder?)")
        try:
            info = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: not valid JSON ({err})") from err
        expected = {name: index for index, name in enumerate(LABEL_NAMES)}
        if info.get("labels") != expected:
            raise InputError(f"{path}: 'labels' is not nph's 33-class SynthSeg table")
        if info.get("nph", {}).get("label_ids") != label_id_table():
            raise InputError(f"{path}: 'nph.label_ids' does not match SynthSeg 2.0's ids")
        return info

    @property
    def case_ids(self) -> list[str]:
        return list(self.manifest["case_id"])

    @property
    def has_images(self) -> bool:
        return bool(self.info["nph"].get("has_images", False))

    def __len__(self) -> int:
        return len(self.manifest)

    def label(self, case_id: str) -> Volume:
        """The case's label map in SynthSeg ids (int16), RAS+."""
        volume = load_volume(self.paths.label(case_id), integer=True)
        volume.data = contiguous_to_ids(volume.data)
        return volume

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
