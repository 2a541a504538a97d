#!/usr/bin/env bash
# What following a style reference costs per image on this CPU: random-sd15 (full-size SD1.5, depth and canny
# ControlNets, IP-Adapter for SD1.5 with its ViT-H/14 image encoder; random weights, no download) in fp32, boho,
# 6 steps, working size 256x192 (synthetic 1024x768 rooms), batch 2, a real room photo as the reference. The bench
# times the run with the reference, the same run without it (same models), and plain diffusers with
# `ip_adapter_image` (one pipe() call per image) before and after.
#
#   bash benchmarks/style_ref_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/cpu}
REF=${REF:-examples/rooms/living-room-01.jpg}
mkdir -p "$OUT"
.venv/bin/modomo bench --models random-sd15 --device cpu --size 256 --steps 6 --style boho --images 2 \
  --batch-size 2 --dtype fp32 --style-ref "$REF" --compare-diffusers --json \
  > "$OUT/random-sd15-256x192-style-ref.json" 2> "$OUT/random-sd15-256x192-style-ref.log"
tail -n 14 "$OUT/random-sd15-256x192-style-ref.log"
