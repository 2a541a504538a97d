#!/usr/bin/env bash
# The staging's passes against plain diffusers' StableDiffusionControlNetInpaintPipeline (one pipe() per image and
# pass: the declutter pass that empties a furnished photo first, the first pass over the region, the second pass over
# the furniture it added; same photos, models and seeds; timed before and after modomo in the same process, the
# faster run is the baseline) on random-sd15 (full-size SD1.5 + the depth, lines and inpaint ControlNets, big-lama,
# SegFormer-b0, DPT-Large, YOLO11m, SAM2.1-tiny; random weights, no download): --mode stage --style boho at 10 steps
# (the declutter pass 6 of them, the second pass 5), working size 256x192 (synthetic 1024x768 rooms), 4 images,
# batch 2, fp32. About 25 minutes on 2 cores. `--no-second-pass` times the first pass alone.
#
#   bash benchmarks/stage_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/cpu}
mkdir -p "$OUT"
name="stage-random-sd15-256x192-b2-fp32"
.venv/bin/modomo bench --models random-sd15 --mode stage --style boho --size 256 --steps 10 --images 4 \
  --batch-size 2 --compare-diffusers --dtype fp32 --json > "$OUT/$name.json" 2> "$OUT/$name.log"
tail -n 30 "$OUT/$name.log"
