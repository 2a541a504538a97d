#!/usr/bin/env bash
# What keeping the room costs per image on this CPU: the lines control (a third ControlNet, and the line
# segment detector in the edges stage) against the same run without it, and the scene segmentation stage
# (SegFormer-b0) in a run that keeps the architecture. random-sd15 (full-size SD1.5, the three ControlNets,
# SegFormer-b0; random weights, no download) in fp32, modern (which uses lines), 6 steps, working size
# 256x192 (synthetic 1024x768 rooms), batch 2; --ablate also times each sampler shortcut off.
#
#   bash benchmarks/parts_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/cpu}
mkdir -p "$OUT"
.venv/bin/modomo bench --models random-sd15 --device cpu --size 256 --steps 6 --style modern --images 2 \
  --batch-size 2 --dtype fp32 --ablate --json \
  > "$OUT/random-sd15-256x192-parts.json" 2> "$OUT/random-sd15-256x192-parts.log"
tail -n 12 "$OUT/random-sd15-256x192-parts.log"
