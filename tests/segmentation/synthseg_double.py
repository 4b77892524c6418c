"""TEST DOUBLE for SynthSeg's `mri_synthseg` (SynthSeg's weights cannot be installed here).

It does not segment: it reads the true label map of each input from $SYNTHSEG_DOUBLE_LABELS (a labelled
dataset's labelsTr/), puts it on a 1 mm LIA grid the way SynthSeg's output is a 1 mm volume, writes SynthSeg's
volume and QC tables (soft volumes = 1.05 × hard, so a test can tell them apart) and logs its argv.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from nph.data.labels import LABEL_IDS, LABEL_NAMES

SYNTHSEG_IDS = list(LABEL_IDS)


def _to_1mm_lia(ids: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour copy of a RAS+ label map on a 1 mm grid with LIA axes (FreeSurfer's conformed order)."""
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    extent = np.array(ids.shape) * spacing
    n = np.ceil(extent).astype(int)
    corner = affine[:3, 3] - spacing / 2  # world position of the RAS+ grid's outer corner
    lia = np.array([[-1, 0, 0], [0, 0, 1], [0, -1, 0]], float)  # columns: +i → left, +j → inferior, +k → anterior
    shape = (n[0], n[2], n[1])
    out_affine = np.eye(4)
    out_affine[:3, :3] = lia
    out_affine[:3, 3] = [corner[0] + n[0] - 0.5, corner[1] + 0.5, corner[2] + n[2] - 0.5]
    idx = np.indices(shape).reshape(3, -1)
    world = out_affine[:3, :3] @ idx + out_affine[:3, 3:4]
    src = np.floor((world - corner[:, None]) / spacing[:, None]).astype(int)
    inside = np.all((src >= 0) & (src < np.array(ids.shape)[:, None]), axis=0)
    out = np.zeros(idx.shape[1], np.int16)
    out[inside] = ids[src[0, inside], src[1, inside], src[2, inside]]
    return out.reshape(shape), out_affine


def main() -> int:
    parser = argparse.ArgumentParser()
    for flag in ("--i", "--o", "--vol", "--qc", "--threads"):
        parser.add_argument(flag)
    for flag in ("--robust", "--parc", "--cpu"):
        parser.add_argument(flag, action="store_true")
    args = parser.parse_args()
    with open(os.environ["SYNTHSEG_DOUBLE_LOG"], "a") as log:
        log.write(json.dumps(sys.argv[1:]) + "\n")
    labels_dir = Path(os.environ["SYNTHSEG_DOUBLE_LABELS"])
    vol_rows, qc_rows = [], []
    for image in sorted(Path(args.i).glob("*.nii.gz")):
        case = image.name.removesuffix(".nii.gz")
        ref = nib.as_closest_canonical(nib.load(image))
        contiguous = np.asarray(nib.load(labels_dir / f"{case}.nii.gz").dataobj).astype(int)
        ids = np.asarray(SYNTHSEG_IDS)[contiguous]
        if args.parc:
            ids = np.where(ids == 3, 1035, np.where(ids == 42, 2035, ids))  # cortex as aparc parcels
        seg, affine = _to_1mm_lia(ids, ref.affine)
        nib.save(nib.Nifti1Image(seg.astype(np.int32), affine), Path(args.o) / f"{case}_synthseg.nii.gz")
        folded = np.where(seg == 1035, 3, np.where(seg == 2035, 42, seg))
        volumes = [1.05 * float((folded == i).sum()) for i in SYNTHSEG_IDS[1:]]
        vol_rows.append([case, f"{1.05 * float((folded > 0).sum()):.4f}", *[f"{v:.4f}" for v in volumes]])
        qc_rows.append([case, "0.9000", "0.8000"])
    names = list(LABEL_NAMES)
    if args.vol:
        with open(args.vol, "w", newline="") as handle:
            csv.writer(handle).writerows([["subject", "total intracranial", *names[1:]], *vol_rows])
    if args.qc:
        with open(args.qc, "w", newline="") as handle:
            csv.writer(handle).writerows([["subject", "general white matter", "general csf"], *qc_rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
