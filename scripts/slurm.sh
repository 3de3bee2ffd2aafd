#!/usr/bin/env bash
# vq-replicate under Slurm, on one node or several, requeued when preempted. The arguments are those of
# `python -m replicate run`; every process of the job reads and writes the checkout (a shared filesystem).
#
#   sbatch --nodes=1 --gpus-per-node=8 scripts/slurm.sh --only wvq_table3 --scale paper
#   sbatch --nodes=4 --gpus-per-node=8 scripts/slurm.sh --only dq_generation --scale paper
#
# Preemption, or the time limit: Slurm sends SIGTERM to this script 5 minutes ahead (--signal=B:TERM@300); the
# script passes it on to the training processes, each of which checkpoints after the step in progress and exits
# with status 75 (replicate/preemption.py); the script then requeues the job, and the requeued job resumes from the
# checkpoints and the result tables (finished configurations are skipped).
#SBATCH --job-name=vq-replicate
#SBATCH --ntasks-per-node=1
#SBATCH --requeue
#SBATCH --signal=B:TERM@300
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -uo pipefail

python=${VQ_PYTHON:-.venv/bin/python}
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
preempted=0
trap 'preempted=1; kill -TERM "$child" 2>/dev/null' TERM

srun --kill-on-bad-exit=1 "$python" -m torch.distributed.run \
  --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node="${SLURM_GPUS_ON_NODE:-1}" \
  --rdzv_backend=c10d --rdzv_endpoint="$head_node:29500" --rdzv_id="$SLURM_JOB_ID" \
  -m replicate run "$@" &
child=$!
wait "$child"; status=$?
if [ "$preempted" = 1 ]; then  # the trap interrupted `wait`: wait for the checkpoints to be written
  wait "$child"; status=$?
fi
if [ "$preempted" = 1 ] || [ "$status" = 75 ]; then
  echo "preempted: requeueing job $SLURM_JOB_ID" >&2
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
"$python" -m replicate report --all
exit "$status"
