"""Where an ``nph`` command runs: this machine (submitit's LocalExecutor), a SLURM job array, an Apptainer image.

``python -m launch <command> cluster=local|slurm [container=IMAGE.sif] [shards=K] key=value ...``
(docs/cluster.md). The launcher never imports torch; each task runs ``nph`` as a subprocess.
"""

from __future__ import annotations

__all__: list[str] = []
