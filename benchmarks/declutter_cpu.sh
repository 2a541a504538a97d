#!/usr/bin/env bash
# The declutter's diffusion pass against plain diffusers' StableDiffusionControlNetInpaintPipeline (one pipe() per
# image on the same LaMa fills, removal masks, strength and seeds; timed before and after modomo in the same process,
# the faster run is the baseline) on random-sd15 (full-size SD1.5 + the lines and inpaint ControlNets, big-lama,
# SegFormer-b0, DPT-Large, YOLO11m, SAM2.1-tiny; random weights, no download): --mode declutter at its recipe's 20
# steps and strength 0.6 (12 denoising steps), working size 256x192 (synthetic 1024x768 rooms), 4 images, batch 2;
# in fp32, then in the default format (bf16 on a CPU with AMX or AVX-512 BF16, with an fp32 baseline beside).
# About an hour on 2 cores.
#
#   bash benchmarks/declutter_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/cpu}
mkdir -p "$OUT"
for dtype in fp32 auto; do
  name="declutter-random-sd15-256x192-b2-$dtype"
  .venv/bin/modomo bench --models random-sd15 --mode declutter --size 256 --images 4 --batch-size 2 \
    --compare-diffusers --dtype "$dtype" --json > "$OUT/$name.json" 2> "$OUT/$name.log"
  tail -n 30 "$OUT/$name.log"
done
