"""Fixtures of the benchmark tests: phantom references and predictions made by perturbing them.

Methods (6 phantom cases, growing ventricles, anisotropic 3.333×3.5×3.333 mm grid):
- ``nnunet`` (contiguous 0..32): exact, except case 1 eroded, case 2 dilated, case 3 missing, case 4 shifted
  one voxel along x;
- ``synthseg`` (SynthSeg ids, on a 1 mm grid): exact, except that the lateral ventricles of the three cases
  with the largest ventricles are eroded twice (SynthSeg failing on large ventricles);
- ``binary`` (0/1 ventricles): every case's ventricular system dilated once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage

from nph.data.dataset import DatasetPaths, LabelledDataset, finalize, write_case
from nph.data.grid import resample_to
from nph.data.labels import VENTRICLE_IDS, ids_to_contiguous
from nph.data.phantoms import make_phantom
from nph.evaluation.schemes import write_prediction_folder_labels
from nph.io.nifti import Volume, save_volume

SHAPE = (48, 64, 48)
SPACING = (3.333, 3.5, 3.333)
N_CASES = 6
WM = 2  # left cerebral white matter: what eroded ventricle voxels become


def erode_ventricles(ids: npt.NDArray, iterations: int = 1, which: tuple[int, ...] = VENTRICLE_IDS) -> npt.NDArray:
    """Each ventricle structure eroded; the voxels it loses become white matter."""
    out = ids.copy()
    for vid in which:
        mask = ids == vid
        lost = mask & ~ndimage.binary_erosion(mask, iterations=iterations)
        out[lost] = WM
    return out


def dilate_ventricles(ids: npt.NDArray) -> npt.NDArray:
    """The ventricular system grown by one voxel into tissue; new voxels take the nearest ventricle's id."""
    ventricles = np.isin(ids, VENTRICLE_IDS)
    grown = ndimage.binary_dilation(ventricles) & (ids != 0)
    _, nearest = ndimage.distance_transform_edt(~ventricles, return_indices=True)
    out = ids.copy()
    out[grown] = ids[tuple(nearest)][grown]
    return out


@dataclass
class Benchmark:
    """Paths of the reference and prediction folders, and the arrays behind them."""

    reference: Path
    predictions: dict[str, Path]
    ref_ids: dict[str, npt.NDArray]
    pred_ids: dict[str, dict[str, npt.NDArray]]  # method → case → map on the reference grid (missing: absent)
    affine: npt.NDArray


def one_mm_grid(affine: npt.NDArray, shape: tuple[int, ...]) -> tuple[npt.NDArray, tuple[int, ...]]:
    """A 1 mm grid covering the same field of view (SynthSeg's output grid)."""
    spacing = np.diag(affine)[:3]
    fine = np.eye(4)
    fine[:3, 3] = affine[:3, 3] - spacing / 2 + 0.5
    return fine, tuple(int(np.ceil(n * s)) for n, s in zip(shape, spacing, strict=True))


def build_benchmark(root: Path) -> Benchmark:
    paths = DatasetPaths(root / "reference")
    rows = []
    for index, enlargement in enumerate(np.linspace(0.0, 1.0, N_CASES)):
        phantom = make_phantom(index, shape=SHAPE, spacing=SPACING, enlargement=float(enlargement), contrast="flair")
        rows.append(write_case(paths, f"case_{index}", phantom.label_ids, phantom.affine, phantom.image))
    finalize(paths, rows)
    dataset = LabelledDataset(root / "reference")
    ref_ids = {case: dataset.label(case).data.astype(np.int16) for case in dataset.case_ids}
    affine = dataset.label(dataset.case_ids[0]).affine
    cases = sorted(ref_ids)
    by_size = sorted(cases, key=lambda c: int(np.isin(ref_ids[c], VENTRICLE_IDS).sum()))
    nnunet = {c: ref_ids[c].copy() for c in cases}
    nnunet[cases[1]] = erode_ventricles(ref_ids[cases[1]])
    nnunet[cases[2]] = dilate_ventricles(ref_ids[cases[2]])
    del nnunet[cases[3]]
    nnunet[cases[4]] = np.roll(ref_ids[cases[4]], 1, axis=0)
    synthseg = {c: ref_ids[c].copy() for c in cases}
    for c in by_size[-3:]:
        synthseg[c] = erode_ventricles(ref_ids[c], iterations=2, which=(4, 43))
    binary = {c: dilate_ventricles(ref_ids[c]) for c in cases}
    binary = {c: np.isin(m, VENTRICLE_IDS).astype(np.uint8) for c, m in binary.items()}
    folders = {m: root / m for m in ("nnunet", "synthseg", "binary")}
    fine_affine, fine_shape = one_mm_grid(affine, SHAPE)
    for case, ids in nnunet.items():
        save_volume(folders["nnunet"] / f"{case}.nii.gz", ids_to_contiguous(ids), affine, dtype=np.uint8)
    for case, ids in synthseg.items():
        fine = resample_to(Volume(ids, affine), fine_affine, fine_shape, order=0)
        save_volume(folders["synthseg"] / f"{case}.nii.gz", fine.data, fine_affine, dtype=np.int16)
    for case, mask in binary.items():
        save_volume(folders["binary"] / f"{case}.nii.gz", mask, affine, dtype=np.uint8)
    write_prediction_folder_labels(folders["nnunet"], "contiguous")
    write_prediction_folder_labels(folders["synthseg"], "synthseg")
    write_prediction_folder_labels(folders["binary"], "binary")
    return Benchmark(root / "reference", folders, ref_ids,
                     {"nnunet": nnunet, "synthseg": synthseg, "binary": binary}, affine)


@pytest.fixture(scope="session")
def benchmark_inputs(tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    """The phantom reference and the three prediction folders (built once per session)."""
    return build_benchmark(tmp_path_factory.mktemp("bench"))
