"""Running the user's SynthSeg (FreeSurfer's ``mri_synthseg`` or the standalone ``SynthSeg_predict.py``).

SynthSeg segments at 1 mm; nph resamples each result back to its reference image's grid (nearest neighbour),
folds any parcellation ids into the 33 SynthSeg 2.0 labels, and recomputes volumes from the hard label map
(SynthSeg's ``--vol`` numbers are soft posterior sums in mm³; they are kept beside ours in mL, prefixed ``soft ``).
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from nph.data.grid import resample_to
from nph.data.labels import LABELS, aseg_to_synthseg, label_id_table
from nph.data.measures import measure, voxel_volume_ml
from nph.errors import InputError
from nph.evaluation.schemes import write_prediction_folder_labels
from nph.io.atomic import write_text
from nph.io.nifti import Volume, load_volume
from nph.segmentation.prediction import find_images, save_prediction, stage_inputs
from nph.segmentation.process import run_logged

__all__ = [
    "SynthSegOptions",
    "build_command",
    "options_from",
    "parse_synthseg_csv",
    "resample_nearest",
    "run_synthseg",
]

log = logging.getLogger(__name__)
FLAVOURS = ("freesurfer", "standalone")


@dataclass(frozen=True)
class SynthSegOptions:
    """How to call SynthSeg; the flags are SynthSeg's own (``--robust``, ``--parc``, ``--threads``, ``--cpu``)."""

    flavour: str = "freesurfer"  # freesurfer: mri_synthseg; standalone: python SynthSeg_predict.py
    executable: str = "mri_synthseg"  # a name on PATH (or inside the container), or a path
    python: str = "python"  # interpreter for the standalone script
    container: str | None = None  # Apptainer image holding SynthSeg; runs `apptainer exec IMAGE ...`
    container_runtime: str = "apptainer"
    robust: bool = True
    parc: bool = False
    vol: bool = True
    qc: bool = True
    threads: int = 1
    cpu: bool = True


def _resolve(name: str, env: Mapping[str, str], hint: str) -> str:
    path = env.get("PATH", "")
    found = shutil.which(name, path=path) if "/" not in name else (name if Path(name).is_file() else None)
    if not found:
        raise InputError(f"synthseg: '{name}' not found (searched PATH={path!r}); {hint}")
    return found


def build_command(opts: SynthSegOptions, input_dir: Path, output_dir: Path, vol_csv: Path, qc_csv: Path,
                  env: Mapping[str, str]) -> list[str]:
    """SynthSeg's command line for a folder of images (one model load for all of them)."""
    if opts.flavour not in FLAVOURS:
        raise InputError(f"synthseg.flavour={opts.flavour!r}: unknown (known: {', '.join(FLAVOURS)})")
    install = ("install FreeSurfer >= 7.3 (mri_synthseg), or set executable=/path/to/SynthSeg_predict.py "
               "flavour=standalone, or container=IMAGE.sif (see docs/synthseg.md)")
    prefix: list[str] = []
    if opts.container:
        if not Path(opts.container).is_file():
            raise InputError(f"container={opts.container}: no such image file")
        runtime = _resolve(opts.container_runtime, env, "install Apptainer or run without container=")
        prefix = [runtime, "exec", *([] if opts.cpu else ["--nv"]), "--bind", str(output_dir.parent), opts.container]
        program = [opts.executable] if opts.flavour == "freesurfer" else [opts.python, opts.executable]
    elif opts.flavour == "freesurfer":
        program = [_resolve(opts.executable, env, install)]
    else:
        script = Path(opts.executable)
        if not script.is_file():
            raise InputError(f"executable={opts.executable}: SynthSeg_predict.py not found; {install}")
        program = [_resolve(opts.python, env, "set python= to SynthSeg's interpreter"), str(script)]
    cmd = [*prefix, *program, "--i", str(input_dir), "--o", str(output_dir)]
    cmd += ["--robust"] * opts.robust + ["--parc"] * opts.parc
    cmd += ["--vol", str(vol_csv)] * opts.vol + ["--qc", str(qc_csv)] * opts.qc
    return [*cmd, "--threads", str(max(1, opts.threads)), *(["--cpu"] if opts.cpu else [])]


def resample_nearest(source: Volume, reference: Volume) -> npt.NDArray[np.int16]:
    """``source`` labels on ``reference``'s voxel grid (world coordinates, nearest neighbour, 0 outside)."""
    return resample_to(source, reference.affine, reference.shape, order=0).data.astype(np.int16)


def parse_synthseg_csv(path: Path) -> pd.DataFrame:
    """SynthSeg's volume or QC table (``subject, <structure>, ...``) indexed by subject without file endings."""
    try:
        rows = list(csv.reader(io.StringIO(path.read_text())))
    except OSError as err:
        raise RuntimeError(f"{path}: SynthSeg wrote no readable table ({err})") from err
    if len(rows) < 2 or rows[0][0].strip().lower() != "subject":
        raise RuntimeError(f"{path}: not a SynthSeg table (expected a 'subject' header and one row per image)")
    header = [h.strip() for h in rows[0]]
    table = pd.DataFrame([r for r in rows[1:] if r], columns=header)
    table["subject"] = [_subject_case(s) for s in table["subject"]]
    return table.set_index("subject").astype(float)


def _subject_case(subject: str) -> str:
    name = Path(subject.strip()).name
    for suffix in (".nii.gz", ".nii", ".mgz", "_synthseg"):
        name = name.removesuffix(suffix)
    return name


def _output_of(out_dir: Path, case: str) -> Path:
    for name in (f"{case}_synthseg.nii.gz", f"{case}.nii.gz", f"{case}_synthseg.nii", f"{case}.nii"):
        if (out_dir / name).is_file():
            return out_dir / name
    raise RuntimeError(f"{out_dir}: SynthSeg wrote no segmentation for case {case}")


def _hard_volumes(case: str, native: Volume) -> dict[str, float]:
    """Hard volumes (mL) per structure, plus nph's ventricle/ICV/Evans measures, from the 1 mm label map."""
    voxel_ml = voxel_volume_ml(native.affine)
    counts = np.bincount(native.data.ravel().astype(np.int64), minlength=61)
    row: dict[str, float | str] = {"case_id": case, **asdict(measure(native.data, native.affine))}
    row.update({label.name: float(counts[label.id] * voxel_ml) for label in LABELS if label.id})
    return row  # type: ignore[return-value]


def run_synthseg(opts: SynthSegOptions, input_dir: Path, out_dir: Path, env: Mapping[str, str]) -> list[str]:
    """Segment every image of ``input_dir`` into the prediction folder ``out_dir`` (SynthSeg ids); return cases.

    Also writes ``volumes.csv`` (hard volumes, then SynthSeg's soft ones) and ``qc.csv`` when ``opts.qc``.
    """
    images = find_images(input_dir)
    work = out_dir / ".nph-synthseg"
    vol_csv, qc_csv = work / "volumes_soft.csv", work / "qc.csv"
    cmd = build_command(opts, work / "in", work / "out", vol_csv, qc_csv, env)  # checks the install first
    try:
        stage_inputs(images, work / "in", suffix=".nii.gz")
        (work / "out").mkdir()
        run_logged(cmd, env, out_dir / ".nph-synthseg.log", "SynthSeg")
        _collect(opts, images, work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("SynthSeg segmented %d cases into %s", len(images), out_dir)
    return list(images)


def _collect(opts: SynthSegOptions, images: Mapping[str, Path], work: Path, out_dir: Path) -> None:
    """Resample SynthSeg's outputs onto the reference grids; write volumes, QC and labels.json."""
    vol_csv, qc_csv = work / "volumes_soft.csv", work / "qc.csv"
    rows = []
    for case, path in images.items():
        raw = _output_of(work / "out", case)
        native = load_volume(raw, integer=True)
        native.data = aseg_to_synthseg(native.data, source=str(raw))
        reference = load_volume(path)
        save_prediction(out_dir, case, resample_nearest(native, reference), reference, source=raw)
        rows.append(_hard_volumes(case, native))
    volumes = pd.DataFrame(rows).set_index("case_id")
    if opts.vol:
        soft = (parse_synthseg_csv(vol_csv) / 1000.0).add_prefix("soft ")  # SynthSeg writes mm³; nph uses mL
        volumes = volumes.join(soft, how="left")
    write_text(out_dir / "volumes.csv", volumes.reset_index().to_csv(index=False))
    if opts.qc:
        qc = parse_synthseg_csv(qc_csv).rename_axis("case_id")
        write_text(out_dir / "qc.csv", qc.reset_index().to_csv(index=False))
    write_prediction_folder_labels(out_dir, "synthseg", label_id_table())


def options_from(mapping: Mapping[str, object], keys: Sequence[str] = tuple(SynthSegOptions.__dataclass_fields__)
                 ) -> SynthSegOptions:
    """Options from a plain mapping (the command's config section), ignoring keys that are not options."""
    return SynthSegOptions(**{k: mapping[k] for k in keys if k in mapping})  # type: ignore[arg-type]
