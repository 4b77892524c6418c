#!/bin/bash

# Parameters
#SBATCH --cpus-per-task=8
#SBATCH --dependency=afterok:17:18_2,singleton
#SBATCH --error=/fs/out/launch/submitit/%j/%j_0_log.err
#SBATCH --job-name=nph-out-1234abcd
#SBATCH --kill-on-invalid-dep=yes
#SBATCH --mem=32GB
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --open-mode=append
#SBATCH --output=/fs/out/launch/submitit/%j/%j_0_log.out
#SBATCH --requeue
#SBATCH --signal=USR2@120
#SBATCH --time=720
#SBATCH --wckey=submitit

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /fs/out/launch/submitit/%j/%j_%t_log.out --error /fs/out/launch/submitit/%j/%j_%t_log.err /opt/py -u -m submitit.core._submit /fs/out/launch/submitit/%j
