"""Labelled dataset folders → one nnU-Net raw dataset, with mixing, a target label scheme and a small split.

The thesis's training sets ("real", "synthetic", "augmented") are mixes of dataset folders with per-source
counts; the selection is seeded and recorded in ``export.json`` beside nnU-Net's ``dataset.json``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nph import __version__
from nph.data.dataset import FILE_ENDING, LabelledDataset
from nph.errors import InputError
from nph.io.atomic import write_json
from nph.io.nifti import load_volume, save_volume
from nph.progress import progress
from nph.segmentation.nnunet_env import NnunetRoot, dataset_folder_name
from nph.segmentation.schemes import Scheme, from_contiguous33, scheme_label_ids, scheme_labels

__all__ = ["ExportResult", "Source", "export_nnunet", "parse_count", "select_cases"]

log = logging.getLogger(__name__)
_TAG_RE = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True)
class Source:
    """One dataset folder to draw from: ``count`` cases (``None`` = all of them)."""

    path: Path
    count: int | None = None


@dataclass(frozen=True)
class ExportResult:
    """What was written: the raw dataset folder, its case ids per source tag, and the validation cases."""

    folder: Path
    cases: dict[str, list[str]]
    val: list[str]


def parse_count(value: Any, key: str) -> int | None:
    """``all``/``None`` → every case; a positive integer → that many."""
    if value is None or (isinstance(value, str) and value.lower() == "all"):
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{key}={value!r}: expected a positive integer or 'all'") from None
    if count < 1 or count != float(value):
        raise InputError(f"{key}={value!r}: expected a positive integer or 'all'")
    return count


def select_cases(case_ids: Sequence[str], count: int | None, seed: int, index: int, source: Path) -> list[str]:
    """A seeded choice of ``count`` cases from one source (order-independent: ids are sorted first)."""
    ids = sorted(case_ids)
    if count is None:
        return ids
    if count > len(ids):
        raise InputError(f"{source}: {count} cases requested but the dataset has only {len(ids)}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), index]))
    return sorted(ids[i] for i in rng.choice(len(ids), size=count, replace=False))


def _tags(paths: Sequence[Path]) -> list[str]:
    """Case-id prefixes naming each source (its folder name), made unique by position when names repeat."""
    names = [_TAG_RE.sub("", p.resolve().name) or "src" for p in paths]
    return [f"{n}{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def _open_sources(sources: Sequence[Source]) -> list[LabelledDataset]:
    if not sources:
        raise InputError("data: no dataset folders given")
    datasets = [LabelledDataset(s.path) for s in sources]
    first = datasets[0]
    for ds in datasets:
        if not ds.has_images:
            raise InputError(f"{ds.paths.dataset_json}: the dataset has label maps only (no images to train on)")
        if ds.info["labels"] != first.info["labels"] or ds.info["nph"]["label_ids"] != first.info["nph"]["label_ids"]:
            raise InputError(f"{ds.paths.dataset_json}: label table differs from {first.paths.dataset_json}")
        if ds.info.get("channel_names") != first.info.get("channel_names"):
            log.warning("%s: channel names %s differ from %s's %s", ds.paths.root, ds.info.get("channel_names"),
                        first.paths.root, first.info.get("channel_names"))
    return datasets


def _link_or_copy(src: Path, dest: Path) -> None:
    """Hard-link an image (no extra disk or inodes' data); copy across file systems."""
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _choose_val(cases: dict[str, list[str]], n_val: int, val_source: str | None, seed: int) -> list[str]:
    pool = sorted(cases[val_source] if val_source else [c for ids in cases.values() for c in ids])
    total = sum(len(v) for v in cases.values())
    if not 1 <= n_val < total or n_val > len(pool):
        raise InputError(f"val_cases={n_val}: must be at least 1, below the {total} exported cases and within "
                         f"the {len(pool)} validation candidates")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1_000_003]))
    return sorted(pool[i] for i in rng.choice(len(pool), size=n_val, replace=False))


def export_nnunet(
    sources: Sequence[Source],
    root: NnunetRoot,
    dataset_id: int,
    name: str,
    *,
    scheme: Scheme,
    seed: int,
    val_cases: int,
    val_source: int | None = None,
) -> ExportResult:
    """Write ``root/nnUNet_raw/DatasetXXX_Name`` from ``sources``; return what went in.

    Case ids become ``<source tag>_<case id>``; images are hard-linked, labels remapped to ``scheme``.
    The folder is written fresh (a previous export of the same id is replaced only after the new one is
    complete), and ``export.json`` records sources, counts, seed, selected cases and the validation split.
    """
    datasets = _open_sources(sources)
    tags = _tags([s.path for s in sources])
    picked = {
        tag: select_cases(ds.case_ids, src.count, seed, i, src.path)
        for i, (tag, ds, src) in enumerate(zip(tags, datasets, sources, strict=True))
    }
    _require_foreground(datasets, tags, picked, scheme)
    if val_source is not None and not 0 <= val_source < len(tags):
        raise InputError(f"val_source={val_source}: must index one of the {len(tags)} data folders")
    cases = {tag: [f"{tag}_{c}" for c in ids] for tag, ids in picked.items()}
    val = _choose_val(cases, val_cases, tags[val_source] if val_source is not None else None, seed)
    folder_name = dataset_folder_name(dataset_id, name)
    for other in root.raw.glob(f"Dataset{int(dataset_id):03d}_*") if root.raw.is_dir() else []:
        if other.name != folder_name:
            raise InputError(f"{other}: dataset id {dataset_id} is taken by another name (remove it or pick an id)")
    final = root.raw / folder_name
    staging = root.raw / f".tmp-{folder_name}"
    total = sum(len(v) for v in picked.values())
    try:
        _write_staging(staging, datasets, tags, picked, scheme)
        write_json(staging / "dataset.json", _nnunet_dataset_json(datasets[0], total, scheme, folder_name))
        write_json(staging / "export.json", _record(sources, tags, picked, cases, val, scheme, seed, datasets))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported %d cases (%s) to %s; %d for validation", total, scheme.value, final, len(val))
    if (root.preprocessed / folder_name).is_dir():
        log.warning("%s holds an earlier plan of this dataset: run `nph nnunet plan` again before training",
                    root.preprocessed / folder_name)
    return ExportResult(folder=final, cases=cases, val=val)


def _require_foreground(datasets: Sequence[LabelledDataset], tags: Sequence[str], picked: dict[str, list[str]],
                        scheme: Scheme) -> None:
    """nnU-Net cannot plan a dataset without foreground: refuse it here, by name, instead of crashing there."""
    column = "icv_ml" if scheme is Scheme.ALL33 else "ventricle_ml"
    total = 0.0
    for tag, ds in zip(tags, datasets, strict=True):
        volumes = ds.manifest.set_index("case_id")[column]
        total += float(volumes.loc[picked[tag]].sum())
    if total <= 0.0:
        roots = ", ".join(str(ds.paths.root) for ds in datasets)
        raise InputError(f"{roots}: none of the selected cases has any {column.removesuffix('_ml')} voxels, so "
                         f"scheme={scheme.value} leaves nnU-Net no foreground to learn")


def _write_staging(staging: Path, datasets: Sequence[LabelledDataset], tags: Sequence[str],
                   picked: dict[str, list[str]], scheme: Scheme) -> None:
    """Images and remapped labels of every selected case, with a progress bar (cases/s)."""
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "imagesTr").mkdir(parents=True)
    (staging / "labelsTr").mkdir()
    with progress(total=sum(len(v) for v in picked.values()), desc=f"export {staging.name}", unit="case") as bar:
        for tag, ds in zip(tags, datasets, strict=True):
            for case in picked[tag]:
                _write_case(ds, case, f"{tag}_{case}", staging, scheme)
                bar.update()


def _write_case(ds: LabelledDataset, case: str, new_id: str, out: Path, scheme: Scheme) -> None:
    _link_or_copy(ds.paths.image(case), out / "imagesTr" / f"{new_id}_0000{FILE_ENDING}")
    label_out = out / "labelsTr" / f"{new_id}{FILE_ENDING}"
    if scheme is Scheme.ALL33:
        _link_or_copy(ds.paths.label(case), label_out)
        return
    label = load_volume(ds.paths.label(case), integer=True)
    save_volume(label_out, from_contiguous33(label.data, scheme), label.affine, dtype=np.uint8)


def _nnunet_dataset_json(first: LabelledDataset, total: int, scheme: Scheme, folder_name: str) -> dict[str, Any]:
    return {
        "channel_names": first.info.get("channel_names", {"0": "MRI"}),
        "labels": scheme_labels(scheme),
        "numTraining": total,
        "file_ending": FILE_ENDING,
        "name": folder_name,
        "nph": {"scheme": scheme.value, "label_ids": scheme_label_ids(scheme), "nph_version": __version__},
    }


def _record(
    sources: Sequence[Source],
    tags: list[str],
    picked: dict[str, list[str]],
    cases: dict[str, list[str]],
    val: list[str],
    scheme: Scheme,
    seed: int,
    datasets: list[LabelledDataset],
) -> dict[str, Any]:
    train = sorted(c for ids in cases.values() for c in ids if c not in set(val))
    return {
        "scheme": scheme.value,
        "seed": int(seed),
        "sources": [
            {"path": str(src.path.resolve()), "tag": tag, "requested": "all" if src.count is None else src.count,
             "available": len(ds), "selected": len(picked[tag]), "cases": picked[tag]}
            for src, tag, ds in zip(sources, tags, datasets, strict=True)
        ],
        "splits": [{"train": train, "val": val}],
        "nph_version": __version__,
    }
