#!/bin/bash

# Parameters
#SBATCH --cpus-per-task=8
#SBATCH --dependency=singleton
#SBATCH --error=/cluster/fs/models/launch/submitit/%j/%j_0_log.err
#SBATCH --gpus-per-node=4
#SBATCH --job-name=nph-train
#SBATCH --kill-on-invalid-dep=yes
#SBATCH --mem=1536MB
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --open-mode=append
#SBATCH --output=/cluster/fs/models/launch/submitit/%j/%j_0_log.out
#SBATCH --requeue
#SBATCH --signal=USR2@120
#SBATCH --time=720
#SBATCH --wckey=submitit

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /cluster/fs/models/launch/submitit/%j/%j_%t_log.out --error /cluster/fs/models/launch/submitit/%j/%j_%t_log.err /opt/py -u -m submitit.core._submit /cluster/fs/models/launch/submitit/%j
