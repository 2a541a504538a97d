#!/usr/bin/env bash
# Compiled bf16 on the CPU (--compile on: the UNet and both ControlNets as AOTInductor packages with frozen,
# pre-packed weights, one per working shape) on random-sd15 (full-size SD1.5 + depth and canny ControlNets, random
# weights, no download), boho, working size 256x192, batch 2, bf16; plain diffusers in bf16 and in fp32
# (same weights) timed before and after modomo in the same process, and modomo's own images again with --compile
# off (the speed-up over eager and the PSNR against it). Four runs, in a cache of their own (modomo's packages and
# inductor's caches start empty), each with /usr/bin/time's peak memory at the end of its log:
#
#   first   --compile on, 8 images: compiles every package
#   second  the same command again: loads them (its compile time is the load)
#   off     --compile off, 4 images: the peak host memory without compiled packages
#   fast    --fast --compile on, 4 images: LCM-LoRA fused (the UNet compiled again: its weights changed) against
#           plain diffusers at the style's standard settings (boho's 20 steps: the other runs take 10)
#
# About 50 minutes on 2 cores; RUNS picks some of them, in order.
#
#   bash benchmarks/compile_cpu.sh
#   RUNS="first second" bash benchmarks/compile_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/cpu}
mkdir -p "$OUT"
CACHE=$(mktemp -d /tmp/modomo-compile-bench-XXXX)
export MODOMO_CACHE="$CACHE" TORCHINDUCTOR_CACHE_DIR="$CACHE/inductor"
common=(--models random-sd15 --device cpu --size 256 --style boho --batch-size 2 --dtype bf16 --compare-diffusers --json)
run() {
  local name="compile-random-sd15-256x192-b2-bf16-$1"
  shift
  /usr/bin/time -v .venv/bin/modomo bench "${common[@]}" "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"
  grep -E "^(compile|compiled|vs diffusers|memory|throughput) |Maximum resident" "$OUT/$name.log" || true
}
declare -A ARGS=(
  [first]="--steps 10 --images 8 --compile on" [second]="--steps 10 --images 8 --compile on"
  [off]="--steps 10 --images 4 --compile off" [fast]="--images 4 --compile on --fast"
)
for which in ${RUNS:-first second off fast}; do
  # shellcheck disable=SC2086
  run "$which" ${ARGS[$which]}
done
du -sh "$CACHE/compiled" "$CACHE/inductor" 2>/dev/null || true
rm -rf "$CACHE"
