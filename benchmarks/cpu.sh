#!/usr/bin/env bash
# The CPU comparison: modomo against plain diffusers (one pipe() per image, timed before and after
# modomo in the same process; the faster run is the baseline) on random-sd15 (full-size SD1.5 + two
# ControlNets, random weights, no download) in fp32, boho, 10 steps, working size 256x192 (synthetic
# 1024x768 rooms), batch 2 then batch 1. About 40 minutes on 2 cores.
#
#   bash benchmarks/cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/cpu}
mkdir -p "$OUT"
rm -f "$OUT"/random-sd15-256-b*.json "$OUT"/random-sd15-256-b*.log
for bs in 2 1; do
  .venv/bin/modomo bench --models random-sd15 --device cpu --size 256 --steps 10 --style boho --images 4 \
    --batch-size "$bs" --dtype fp32 --compare-diffusers --json \
    > "$OUT/random-sd15-256x192-b$bs.json" 2> "$OUT/random-sd15-256x192-b$bs.log"
  tail -n 3 "$OUT/random-sd15-256x192-b$bs.log"
done
