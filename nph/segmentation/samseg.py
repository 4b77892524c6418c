"""Running FreeSurfer's SAMSEG (the ``samseg`` package, in its own venv) as a baseline segmenter.

SAMSEG (Puonti et al. 2016) fits its probabilistic atlas and a GMM per class to each image, so it segments any
contrast without training. It needs numpy < 2, hence its own environment (``make install-samseg`` →
``.venv-samseg``) or its own image (containers/samseg.def). nph runs ``run_samseg`` once per case as a
subprocess with an explicit environment, maps its aseg-style ids onto SynthSeg's 33 (non-brain → background;
docs/samseg.md), resamples onto the reference grid and writes a prediction folder. A case whose prediction file
exists is done: a rerun skips it (files are written atomically).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from nph.data.dataset import FILE_ENDING
from nph.data.grid import resample_to
from nph.data.labels import aseg_to_synthseg, label_id_table
from nph.errors import InputError
from nph.evaluation.schemes import LABELS_JSON, read_prediction_scheme, write_prediction_folder_labels
from nph.io.atomic import write_json, write_text
from nph.io.nifti import Volume, load_volume, save_volume, spacing_of
from nph.segmentation.prediction import find_images, save_prediction
from nph.segmentation.process import run_logged
from nph.synthesis.shards import Shard, shard_indices

__all__ = [
    "FAST_OPTIONS",
    "NON_BRAIN_IDS",
    "SamsegOptions",
    "default_executable",
    "isotropic_grid",
    "run_samseg",
    "samseg_command",
    "samseg_env",
    "samseg_to_synthseg",
]

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
#: SAMSEG's atlas classes outside the brain (its compressionLookupTable): skull, soft non-brain tissue, eye fluid.
NON_BRAIN_IDS: tuple[int, ...] = (165, 258, 259)
_WORK = ".nph-samseg"
#: SAMSEG's advanced options (its --options JSON) for coarse toy grids: only the coarse atlas mesh (level 1),
#: fitted at 4 mm with 10 iterations instead of level 1 at 2 mm then level 2 at 1 mm with 100 each.
FAST_OPTIONS: dict[str, object] = {
    "optimizationOptions": {
        "maximumNumberOfDeformationIterations": 10,
        "multiResolutionSpecification": [{"targetDownsampledVoxelSpacing": 4.0, "maximumNumberOfIterations": 10}],
    }
}
PRESETS = ("default", "fast")
_INSTALL_HINT = "run `make install-samseg` (a separate venv .venv-samseg), or set executable=/path/to/run_samseg"


@dataclass(frozen=True)
class SamsegOptions:
    """How to call SAMSEG: its executable, threads, and the isotropic grid (mm) it sees (None: the image's own)."""

    executable: str | None = None  # None: <repo>/.venv-samseg/bin/run_samseg, else run_samseg on PATH
    threads: int = 1
    spacing_mm: float | None = None
    extra_args: tuple[str, ...] = ()  # SAMSEG's own flags, e.g. ("--pallidum-separate",) for FLAIR/T2
    shard: Shard = field(default_factory=Shard)  # k/K: every K-th case from the k-th (a cluster array)
    container: str | None = None  # Apptainer image with run_samseg on its PATH (containers/samseg.def)
    container_runtime: str = "apptainer"
    preset: str = "default"  # default: SAMSEG's own optimisation; fast: FAST_OPTIONS (coarse grids, CI, demo)


def default_executable(env: Mapping[str, str]) -> str:
    """``.venv-samseg/bin/run_samseg`` of this checkout if installed, else ``run_samseg`` on ``env``'s PATH."""
    local = REPO / ".venv-samseg" / "bin" / "run_samseg"
    if local.is_file():
        return str(local)
    found = shutil.which("run_samseg", path=env.get("PATH", ""))
    if not found:
        raise InputError(f"samseg: {local} not found and no run_samseg on PATH; {_INSTALL_HINT}")
    return found


def _program(opts: SamsegOptions, env: Mapping[str, str], out_dir: Path) -> list[str]:
    """What to run: the host's run_samseg, or ``apptainer exec --bind OUT IMAGE run_samseg``."""
    if opts.container is None:
        return [_resolve(opts, env)]
    if not Path(opts.container).is_file():
        raise InputError(f"container={opts.container}: no such image file (build it: make container CONTAINER=samseg)")
    runtime = shutil.which(opts.container_runtime, path=env.get("PATH", ""))
    if not runtime:
        raise InputError(f"container_runtime={opts.container_runtime}: not found on PATH; install Apptainer")
    return [runtime, "exec", "--bind", str(out_dir), opts.container, opts.executable or "run_samseg"]


def _resolve(opts: SamsegOptions, env: Mapping[str, str]) -> str:
    if opts.executable is None:
        return default_executable(env)
    if "/" in opts.executable:
        if not Path(opts.executable).is_file():
            raise InputError(f"executable={opts.executable}: no such file; {_INSTALL_HINT}")
        return opts.executable
    found = shutil.which(opts.executable, path=env.get("PATH", ""))
    if not found:
        raise InputError(f"executable={opts.executable}: not found on PATH; {_INSTALL_HINT}")
    return found


def samseg_env(base: Mapping[str, str], threads: int, executable: str) -> dict[str, str]:
    """The environment SAMSEG gets: no PYTHONPATH/venv of nph's (numpy 2 would leak in), threads pinned."""
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
    env = {k: base[k] for k in keep if k in base}
    bin_dir = str(Path(executable).parent)
    env["PATH"] = f"{bin_dir}:{base.get('PATH', '/usr/bin:/bin')}"
    n = str(max(1, threads))
    env.update(
        {
            "OMP_NUM_THREADS": n,
            "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": n,
            "OPENBLAS_NUM_THREADS": n,
            "MKL_NUM_THREADS": n,
            "PYTHONNOUSERSITE": "1",
            "PYTHONUNBUFFERED": "1",  # SAMSEG's progress reaches the log as it happens
        }
    )
    return env


def samseg_command(program: list[str], image: Path, out: Path, opts: SamsegOptions) -> list[str]:
    """SAMSEG's command line for one image (an argument list; never a shell)."""
    return [*program, "-i", str(image), "-o", str(out), "--threads", str(max(1, opts.threads)), *opts.extra_args]


def samseg_to_synthseg(ids: npt.NDArray[np.integer], source: str = "SAMSEG output") -> npt.NDArray[np.int16]:
    """SAMSEG's ids → SynthSeg's 33: non-brain classes → 0, then FreeSurfer's aseg → SynthSeg table.

    An id outside SAMSEG's atlas raises :class:`InputError` rather than being guessed.
    """
    out = np.asarray(ids).astype(np.int32, copy=True)
    out[np.isin(out, NON_BRAIN_IDS)] = 0
    return aseg_to_synthseg(out, source=source)


def isotropic_grid(volume: Volume, spacing_mm: float) -> tuple[npt.NDArray[np.float64], tuple[int, int, int]]:
    """An axis-aligned grid of ``spacing_mm`` voxels covering ``volume``'s field of view (same corner)."""
    spacing = np.asarray(spacing_of(volume.affine))
    shape = tuple(int(np.ceil(n * s / spacing_mm)) for n, s in zip(volume.shape, spacing, strict=True))
    affine = volume.affine.copy()
    affine[:3, :3] = volume.affine[:3, :3] / spacing * spacing_mm
    return affine, shape  # type: ignore[return-value]


def _check_out(out_dir: Path) -> None:
    """Refuse a folder that already holds another segmenter's predictions (resume only adds SAMSEG's)."""
    if (out_dir / LABELS_JSON).is_file() and read_prediction_scheme(out_dir).scheme.value != "synthseg":
        raise InputError(f"{out_dir / LABELS_JSON}: this folder holds another method's predictions; choose a new out=")


def run_samseg(opts: SamsegOptions, input_dir: Path, out_dir: Path, env: Mapping[str, str]) -> list[str]:
    """Segment the images of ``input_dir`` (this shard's) into the prediction folder ``out_dir``; return cases.

    Also writes ``samseg_cases.csv``: per case the grid SAMSEG saw, its threads and wall seconds.
    """
    if opts.preset not in PRESETS:
        raise InputError(f"preset={opts.preset!r}: unknown (known: {', '.join(PRESETS)})")
    images = find_images(input_dir)
    program = _program(opts, env, out_dir)
    references = {case: load_volume(path) for case, path in images.items()}  # corrupt input: refused before work
    _check_out(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_env = samseg_env(env, opts.threads, program[0])
    mine = [list(images)[i] for i in shard_indices(len(images), opts.shard)]
    todo = [case for case in mine if not (out_dir / f"{case}{FILE_ENDING}").is_file()]
    log.info(
        "SAMSEG shard %s: %d cases, %d already done, %d to run (%d thread(s))",
        opts.shard,
        len(mine),
        len(mine) - len(todo),
        len(todo),
        opts.threads,
    )
    for number, case in enumerate(todo, 1):
        log.info("SAMSEG case %s (%d/%d)", case, number, len(todo))
        _segment_case(case, references[case], program, opts, run_env, out_dir)
    write_prediction_folder_labels(out_dir, "synthseg", label_id_table())
    _write_costs(out_dir, list(images))
    return mine


def _segment_case(
    case: str, reference: Volume, program: list[str], opts: SamsegOptions, env: Mapping[str, str], out_dir: Path
) -> None:
    work = out_dir / _WORK / case
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    seen = reference
    if opts.spacing_mm is not None:
        affine, shape = isotropic_grid(reference, opts.spacing_mm)
        seen = resample_to(reference, affine, shape, order=1)
    image = save_volume(work / f"{case}{FILE_ENDING}", seen.data.astype(np.float32), seen.affine)
    cmd = samseg_command(program, image, work / "out", opts)
    if opts.preset == "fast":
        cmd += ["--options", str(write_json(work / "options.json", FAST_OPTIONS))]
    start = time.monotonic()
    run_logged(cmd, env, out_dir / _WORK / f"{case}.log", f"SAMSEG {case}")
    seconds = time.monotonic() - start
    raw = work / "out" / "seg.mgz"
    if not raw.is_file():
        raise RuntimeError(f"{work / 'out'}: SAMSEG wrote no seg.mgz for case {case}")
    native = load_volume(raw, integer=True)
    native.data = samseg_to_synthseg(native.data, source=str(raw))
    labels = resample_to(native, reference.affine, reference.shape, order=0).data.astype(np.int16)
    cost = {
        "case_id": case,
        "seconds": round(seconds, 1),
        "threads": opts.threads,
        "preset": opts.preset,
        "samseg_shape": list(seen.shape),
        "samseg_spacing_mm": [round(s, 3) for s in spacing_of(seen.affine)],
    }
    write_json(out_dir / _WORK / f"{case}.cost.json", cost)
    save_prediction(out_dir, case, labels, reference, source=raw)  # last: its presence marks the case done
    shutil.rmtree(work, ignore_errors=True)


def _write_costs(out_dir: Path, cases: list[str]) -> None:
    import json

    rows = []
    for case in cases:
        path = out_dir / _WORK / f"{case}.cost.json"
        if path.is_file():
            row = json.loads(path.read_text())
            row["samseg_shape"] = "x".join(map(str, row["samseg_shape"]))
            row["samseg_spacing_mm"] = "x".join(map(str, row["samseg_spacing_mm"]))
            rows.append(row)
    if rows:
        write_text(out_dir / "samseg_cases.csv", pd.DataFrame(rows).to_csv(index=False))
