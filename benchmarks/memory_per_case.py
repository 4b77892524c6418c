"""Peak anonymous memory of a training run against the number of cases, at the thesis grid (96×128×96).

    .venv/bin/python benchmarks/memory_per_case.py --work /tmp/nph-mem [--cases 24 72 200]

For each case count it writes a labelled dataset of that many thesis-grid pairs (hard links to a few
`nph phantom` cases under new case ids: the data path does not care what the heads look like), runs
``nph train stage=image_ae`` with a small network (the data, not the network, is the point) for a few steps
in a child process, and samples the child's RssAnon (/proc/PID/status) every 20 ms. The slope of peak
anonymous memory over the number of cases is the figure (docs/performance.md): it must stay well under
1 MB per case. It then times the data path alone (case store → DataLoader → collated batches) against a
training step. Prints one JSON object; writes it to ``--json`` if given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
THESIS_GRID = ["experiment=thesis"]
#: A small SPADE autoencoder on the thesis grid (×4, 6 latent channels as the thesis), no adversary.
SMALL_IMAGE_AE = [
    "image_ae.network.channels=[8,16,16]",
    "image_ae.network.num_res_blocks=1",
    "image_ae.network.norm_num_groups=8",
    "image_ae.network.spade_channels=8",
    "image_ae.loss.adv_weight=0",
    "image_ae.validation_cases=2",
    "image_ae.train.batch_size=1",
    "image_ae.train.num_workers=0",
    "image_ae.train.warmup_steps=0",
]
BASE_CASES = 4
POLL_S = 0.02


def _nph(*argv: str, **kwargs: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    return subprocess.Popen([sys.executable, "-m", "nph", *argv], env=env, cwd=ROOT, **kwargs)


def _anon_kib(pid: int) -> int:
    """RssAnon of ``pid`` and its children (DataLoader workers), KiB; 0 once it is gone."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.is_file():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def peak_anon_mb(argv: list[str], log: Path) -> tuple[float, float]:
    """Run ``nph *argv``; return (peak anonymous MB of it and its workers, wall seconds)."""
    peak = [0]
    with open(log, "w") as handle:
        started = time.perf_counter()
        child = _nph(*argv, stdout=handle, stderr=subprocess.STDOUT)

        def watch() -> None:
            while child.poll() is None:
                peak[0] = max(peak[0], _anon_kib(child.pid))
                time.sleep(POLL_S)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        code = child.wait()
        thread.join()
    if code != 0:
        raise SystemExit(f"nph {' '.join(argv)} failed ({code}); see {log}")
    return peak[0] / 1024, time.perf_counter() - started


def dataset_of(base: Path, count: int, out: Path) -> Path:
    """``count`` cases that hard-link the ``base`` dataset's files round-robin under new case ids."""
    import pandas as pd

    if (out / "manifest.csv").is_file():
        return out
    manifest = pd.read_csv(base / "manifest.csv", dtype={"case_id": str})
    rows = []
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        row = manifest.iloc[i % len(manifest)].to_dict()
        case = f"case_{i:04d}"
        os.link(base / row["image"], out / "imagesTr" / f"{case}_0000.nii.gz")
        os.link(base / row["label"], out / "labelsTr" / f"{case}.nii.gz")
        rows.append(
            {**row, "case_id": case, "image": f"imagesTr/{case}_0000.nii.gz", "label": f"labelsTr/{case}.nii.gz"}
        )
    info = json.loads((base / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**info, "numTraining": count}, indent=2))
    pd.DataFrame(rows).to_csv(out / "manifest.csv", index=False)
    return out


def data_path_rate(data: Path, cache: Path, workers: int, batches: int) -> float:
    """Samples/s of the data path alone: store → DataLoader (batch 1, BatchOrder's order) → collated batch."""
    sys.path.insert(0, str(ROOT))
    from torch.utils.data import DataLoader

    from nph.models.image_data import load_pairs
    from nph.training.data import BatchOrder, MicroBatches, collate

    examples = load_pairs(data, cache=cache).examples
    plan = MicroBatches(BatchOrder(len(examples), 1, 1, seed=0), 0, batches)
    loader = DataLoader(
        examples, batch_sampler=plan, collate_fn=collate, num_workers=workers, prefetch_factor=4 if workers else None
    )
    started, seen = time.perf_counter(), 0
    for batch in loader:
        seen += int(batch["image"].shape[0])
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (datasets, models)")
    parser.add_argument("--cases", type=int, nargs="+", default=[24, 72, 200])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = args.work
    base = work / "base"
    if not (base / "manifest.csv").is_file():
        shutil.rmtree(base, ignore_errors=True)
        assert _nph("phantom", f"out={base}", f"n={BASE_CASES}", "seed=0", *THESIS_GRID).wait() == 0
    figures: dict[str, Any] = {"cases": [], "peak_anon_mb": [], "run_seconds": []}
    for count in args.cases:
        data = dataset_of(base, count, work / f"data_{count}")
        models = work / f"models_{count}"
        shutil.rmtree(models, ignore_errors=True)
        argv = [
            "train",
            "stage=image_ae",
            f"data={data}",
            f"models={models}",
            *THESIS_GRID,
            *SMALL_IMAGE_AE,
            f"image_ae.train.max_steps={args.steps}",
            "wandb.mode=disabled",
        ]
        peak, seconds = peak_anon_mb(argv, work / f"train_{count}.log")
        figures["cases"].append(count)
        figures["peak_anon_mb"].append(round(peak, 1))
        figures["run_seconds"].append(round(seconds, 1))
        print(f"{count} cases: peak anonymous memory {peak:.1f} MB, run {seconds:.0f} s", flush=True)
    slope, intercept = np.polyfit(figures["cases"], figures["peak_anon_mb"], 1)
    figures.update(slope_mb_per_case=round(float(slope), 4), intercept_mb=round(float(intercept), 1))
    largest = figures["cases"][-1]
    data, cache = work / f"data_{largest}", work / f"models_{largest}" / "cache"
    figures["data_path_samples_per_s"] = {str(w): round(data_path_rate(data, cache, w, 100), 1) for w in (0, 2)}
    train_log = (work / f"train_{largest}.log").read_text()
    rates = [
        float(part.split("=")[1].rstrip("]"))
        for part in train_log.replace(",", " ").split()
        if part.startswith("samples_per_s=")
    ]
    figures["training_samples_per_s"] = rates[-1] if rates else None
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
