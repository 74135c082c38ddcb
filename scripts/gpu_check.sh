#!/usr/bin/env bash
# Device-machine entry: install the carried wheels and this package, then run the GPU checks.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation --no-index --upgrade --target /tmp/site . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia_smi.txt"
REPO=$(pwd)
# run from /tmp so that `-m sci_diffusion` imports the installed package, not the source tree
cd /tmp && python3 "$REPO/scripts/gpu_check.py" "$OUT" /tmp/gpu_runs 2>&1 | tee "$OUT/gpu_check.log"
cd /tmp && python3 "$REPO/scripts/gpu_tasks.py" "$OUT" /tmp/gpu_runs --budget "${GPU_TASKS_BUDGET:-300}" ${GPU_TASKS_ARGS:-} 2>&1 | tee "$OUT/gpu_tasks.log"
