#!/usr/bin/env bash
# Eight shards of an R2 prefix as a SLURM array, one GPU each:
#   sbatch examples/scale-out/slurm-array.sh
# modomo reads its shard from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_MIN / SLURM_ARRAY_TASK_COUNT.
#SBATCH --job-name=modomo
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=modomo-%A-%a.log
set -euo pipefail
source .venv/bin/activate          # make install, with the sd15 weights fetched once (modomo models download)
export HF_HUB_OFFLINE=1             # R2_* variables come from the submitting shell's environment
modomo transform r2://catalogue/rooms/ --style modern --out r2://catalogue/restyled/ --json \
  > "modomo-${SLURM_ARRAY_JOB_ID}-${SLURM_ARRAY_TASK_ID}.json"
