#!/usr/bin/env bash
# What only a GPU shows, in one run of about 8 minutes on an H200 (benchmarks/gpu_checks.py says what):
# out-of-memory at batch 1 finishing through offload, fp16 output that is not black, and images/s of
# modomo against plain diffusers on random-sd15 (full-size SD1.5 + two ControlNets, random weights, no
# download), boho, 20 steps, fp16, at 512x512 and 768x576, batch 1, 4 and 8, then batch 1 and 8 at
# 512x512 with torch.compile. Writes gpu.txt, checks.json, grid.json and gpu_checks.log into $OUT
# (default benchmarks/gpu/DATE); extra arguments go to gpu_checks.py (e.g. --budget 300).
#
#   bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/gpu/$(date -u +%F)}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 HF_HUB_OFFLINE=1 YOLO_VERBOSE=False
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" || true
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
"$PY" benchmarks/gpu_checks.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_checks.log"
