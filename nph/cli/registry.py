"""Which module runs each ``nph <command>``; its config is ``configs/<command with _>.yaml``.

Each module defines ``run(cfg: DictConfig) -> None`` and a docstring that ``--help`` prints.
"""

from __future__ import annotations

__all__ = ["COMMANDS", "SUBCOMMANDS"]

COMMANDS: dict[str, str] = {
    "phantom": "nph.cli.commands.phantom",
    "ingest": "nph.cli.commands.ingest",
    "evaluate": "nph.cli.commands.evaluate",
    "image-quality": "nph.cli.commands.image_quality",
    "nnunet": "nph.cli.commands.nnunet",
    "synthseg": "nph.cli.commands.synthseg",
    "samseg": "nph.cli.commands.samseg",
    "randomize": "nph.cli.commands.randomize",
    "generate": "nph.cli.commands.generate",
    "generate-merge": "nph.cli.commands.generate_merge",
    "generate-status": "nph.cli.commands.generate_status",
    "sample-images": "nph.cli.commands.sample_images",
    "train": "nph.cli.commands.train",
    "sample-masks": "nph.cli.commands.sample_masks",
    "evaluate-masks": "nph.cli.commands.evaluate_masks",
    "import-thesis": "nph.cli.commands.import_thesis",
}

#: Commands whose next word picks an action, passed on as ``action=<word>``.
SUBCOMMANDS: dict[str, tuple[str, ...]] = {}
SUBCOMMANDS["nnunet"] = ("export", "plan", "train", "predict")
