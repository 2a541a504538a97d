#!/usr/bin/env bash
# The CPU comparison: modomo against plain diffusers on random-sd15 (full-size SD1.5 + two ControlNets,
# random weights, no download), boho, 256x256, 10 steps, batch 1 and 2. About 20 minutes on 2 cores.
#
#   bash benchmarks/cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/cpu}
mkdir -p "$OUT"
for bs in 1 2; do
  .venv/bin/modomo bench --models random-sd15 --device cpu --size 256 --synthetic-size 256x256 --steps 10 \
    --style boho --images 4 --warmup "$bs" --batch-size "$bs" --compare-diffusers --json \
    > "$OUT/random-sd15-256-b$bs.json" 2> "$OUT/random-sd15-256-b$bs.log"
  tail -n 3 "$OUT/random-sd15-256-b$bs.log"
done
