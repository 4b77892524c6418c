#!/bin/bash

# Parameters
#SBATCH --account=proj42
#SBATCH --array=0-99%64
#SBATCH --constraint=a100
#SBATCH --cpus-per-task=8
#SBATCH --dependency=singleton
#SBATCH --error=/cluster/fs/run/launch/submitit/%A_%a/%A_%a_0_log.err
#SBATCH --gres=gpu:1
#SBATCH --job-name=nph-generate
#SBATCH --kill-on-invalid-dep=yes
#SBATCH --mem=32GB
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --open-mode=append
#SBATCH --output=/cluster/fs/run/launch/submitit/%A_%a/%A_%a_0_log.out
#SBATCH --partition=gpu
#SBATCH --qos=normal
#SBATCH --requeue
#SBATCH --signal=USR2@120
#SBATCH --time=720
#SBATCH --wckey=submitit

# setup
module load apptainer
export WANDB_MODE=offline

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /cluster/fs/run/launch/submitit/%A_%a/%A_%a_%t_log.out --error /cluster/fs/run/launch/submitit/%A_%a/%A_%a_%t_log.err /opt/py -u -m submitit.core._submit /cluster/fs/run/launch/submitit/%j
