"""Peak anonymous memory of a training run against the number of cases, at the thesis grid (96×128×96).

    .venv/bin/python benchmarks/memory_per_case.py --work /tmp/nph-mem [--cases 24 72 200]

For each case count it writes a labelled dataset of that many thesis-grid pairs (hard links to a few
`nph phantom` cases under new case ids: the data path does not care what the heads look like) and trains,
in a child process, the image autoencoder task (``ImageAETask``, a small SPADE network on random 16³ crops:
the data, not the network, is the point) with the real engine for as many steps as there are cases, so every
case is read at least once. The parent samples the child's RssAnon (/proc/PID/status, workers included)
every 20 ms. ``store`` is nph's path (memory-mapped case store, what ``nph train`` uses); ``eager`` holds
every case in a list as float32 image + int64 labels, as nph did before. The slope of peak anonymous memory
over the number of cases is the figure (docs/performance.md): it must stay well under 1 MB per case.
It also times the data path alone (store → DataLoader → collated batches) against the training step.
Prints one JSON object; writes it to ``--json`` if given.
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
SMALL_AE = {
    "channels": [8, 8],
    "num_res_blocks": 1,
    "latent_channels": 6,
    "norm_num_groups": 8,
    "spade_channels": 8,
    "attention": False,
}
CROP = (16, 16, 16)
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
    """Run ``python THIS_SCRIPT *argv``; return (peak anonymous MB of it and its workers, wall seconds)."""
    peak = [0]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    with open(log, "w") as handle:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, __file__, *argv], env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT
        )

        def watch() -> None:
            while child.poll() is None:
                peak[0] = max(peak[0], _anon_kib(child.pid))
                time.sleep(POLL_S)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        code = child.wait()
        thread.join()
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({code}); see {log}")
    return peak[0] / 1024, time.perf_counter() - started


def train_child(data: Path, cache: Path, out: Path, mode: str, workers: int) -> None:
    """One engine run of the image AE task over every case (the child process the parent measures)."""
    sys.path.insert(0, str(ROOT))
    import torch

    from nph.models.image_ae import ImageAETask, build_image_ae
    from nph.models.image_data import load_pairs
    from nph.training import Engine, EngineConfig

    torch.set_num_threads(1)
    examples = load_pairs(data, (96, 128, 96), cache).examples
    if mode == "eager":
        examples = [examples[i] for i in range(len(examples))]  # float32 image + int64 labels per case, held
    torch.manual_seed(0)
    task = ImageAETask(
        build_image_ae(SMALL_AE),
        discriminator=None,
        perceptual=None,
        kl_weight=1e-6,
        adv_weight=0.0,
        perceptual_weight=0.0,
        adv_start=0,
        crop=CROP,
    )
    cfg = EngineConfig(
        max_steps=len(examples),
        batch_size=1,
        lr=1e-3,
        checkpoint_every=10**6,
        log_every=10**6,
        num_workers=workers,
        precision="fp32",
    )
    started = time.perf_counter()
    result = Engine(task, examples, cfg, out)()
    rate = result.steps / (time.perf_counter() - started)
    print(json.dumps({"training_samples_per_s": rate, "final_loss": result.losses[-1]}), flush=True)


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
    parser.add_argument("--modes", nargs="+", default=["store", "eager"])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", nargs=4, metavar=("DATA", "CACHE", "OUT", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        data, cache, out, mode = args.child
        train_child(Path(data), Path(cache), Path(out), mode, args.workers)
        return
    work = args.work
    base = work / "base"
    if not (base / "manifest.csv").is_file():
        shutil.rmtree(base, ignore_errors=True)
        assert _nph("phantom", f"out={base}", f"n={BASE_CASES}", "seed=0", *THESIS_GRID).wait() == 0
    figures: dict[str, Any] = {"cases": args.cases}
    for mode in args.modes:
        peaks, rates = [], []
        for count in args.cases:
            data = dataset_of(base, count, work / f"data_{count}")
            out = work / f"run_{mode}_{count}"
            shutil.rmtree(out, ignore_errors=True)
            child = ["--work", str(work), "--child", str(data), str(work / "cache"), str(out), mode]
            peak, seconds = peak_anon_mb(child, work / f"{mode}_{count}.log")
            lines = (work / f"{mode}_{count}.log").read_text().splitlines()
            rates.append(round(json.loads(lines[-1])["training_samples_per_s"], 2))
            peaks.append(round(peak, 1))
            print(f"{mode}, {count} cases: peak anonymous memory {peak:.1f} MB ({seconds:.0f} s)", flush=True)
        slope, intercept = np.polyfit(args.cases, peaks, 1)
        figures[mode] = {
            "peak_anon_mb": peaks,
            "slope_mb_per_case": round(float(slope), 4),
            "intercept_mb": round(float(intercept), 1),
            "training_samples_per_s": rates,
        }
    data = work / f"data_{args.cases[-1]}"
    figures["data_path_samples_per_s"] = {
        f"{w}_workers": round(data_path_rate(data, work / "cache", w, 200), 1) for w in (0, 2)
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
