#!/usr/bin/env bash
# The GPU comparison: modomo against plain diffusers on random-sd15 (full-size SD1.5 + two ControlNets,
# random weights, no download), boho, 20 steps, CFG, fp16, at 512x512 and 768x512, batch 1 and 4,
# plus one ablation run. About 5 minutes on an H200. Writes JSON and logs into $OUT (default benchmarks/gpu).
#
#   bash benchmarks/gpu.sh
set -euo pipefail
OUT=${OUT:-benchmarks/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" || true

run() {  # name, then bench options
  local name=$1; shift
  python3 -m modomo_cli bench --models random-sd15 --style boho --steps 20 --images 8 --warmup 2 \
    --compare-diffusers --json "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"
  tail -n 6 "$OUT/$name.log"
}

run 512x512-b1 --size 512 --synthetic-size 512x512 --batch-size 1
run 512x512-b4 --size 512 --synthetic-size 512x512 --batch-size 4
run 768x512-b1 --size 768 --synthetic-size 768x512 --batch-size 1
run 768x512-b4 --size 768 --synthetic-size 768x512 --batch-size 4 --ablate
