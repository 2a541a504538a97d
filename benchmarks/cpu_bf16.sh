#!/usr/bin/env bash
# bfloat16 on the CPU: modomo in bf16 against plain diffusers in fp32 and in bf16, each timed before and after
# modomo in the same process (the faster run of each is its baseline), on random-sd15 (full-size SD1.5 + two
# ControlNets, random weights, no download), boho, 10 steps, working size 256x192, batch 2. The fp32 baseline
# runs on a generator with the same weights. Also reports the generate stage's share of this CPU's measured
# bf16 matmul peak, and the PSNR of modomo's bf16 results against plain diffusers' fp32 ones.
#
#   bash benchmarks/cpu_bf16.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/cpu}
mkdir -p "$OUT"
.venv/bin/modomo bench --models random-sd15 --device cpu --size 256 --steps 10 --style boho --images 4 \
  --batch-size 2 --compare-diffusers --dtype bf16 --json \
  > "$OUT/random-sd15-256x192-b2-bf16.json" 2> "$OUT/random-sd15-256x192-b2-bf16.log"
tail -n 6 "$OUT/random-sd15-256x192-b2-bf16.log"
