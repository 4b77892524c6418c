"""Subprocess entry for nnU-Net prediction: nnU-Net's Python predictor with an explicit thread count.

``nnUNetv2_predict -device cpu`` sets torch to every core of the node, which oversubscribes a SLURM task;
this entry sets the allocation's threads instead. Run as ``python -m nph.segmentation.nnunet_predict_main``
with nnU-Net's paths in the environment (nph's command layer builds it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Predict every ``<case>_0000.nii.gz`` in ``--input`` into ``--output`` with the model folder ``--model``."""
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("--input", "--output", "--model", "--fold", "--device"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args(argv)

    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nph.progress import bars_wanted

    torch.set_num_threads(max(1, args.threads))
    fold = args.fold if args.fold == "all" else int(args.fold)
    # a bar on a terminal only (and not under NPH_PROGRESS=lines): in a log file its \r frames pile up into one line
    predictor = nnUNetPredictor(device=torch.device(args.device), allow_tqdm=bars_wanted(sys.stderr))
    predictor.initialize_from_trained_model_folder(args.model, use_folds=(fold,))
    predictor.predict_from_files(
        args.input,
        args.output,
        overwrite=True,
        num_processes_preprocessing=args.processes,
        num_processes_segmentation_export=args.processes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
