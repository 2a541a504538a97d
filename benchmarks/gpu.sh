#!/usr/bin/env bash
# What only a GPU shows, in one run sized for about 8 minutes on an H200 (benchmarks/gpu_checks.py says what):
# out-of-memory at batch 1 finishing through offload, fp16 output that is not black, and images/s of
# modomo against plain diffusers on random-sd15 (full-size SD1.5 + two ControlNets, random weights, no
# download), boho, 20 steps, fp16, at 512x512 and 768x576, batch 1, 4 and 8, then batch 1 and 8 at
# 512x512 with torch.compile. Writes gpu.txt, install.log, checks.json, grid.json and gpu_checks.log into
# $OUT (default benchmarks/gpu/DATE), each as soon as it exists; extra arguments go to gpu_checks.py.
#
# The GPU machine reaches no package registry: where modomo's packages do not import there, they are
# installed offline, with no dependency resolution, from the wheels of `make gpu-bundle` (.gpu/, carried
# with the tree) into a folder put first on PYTHONPATH. docs/benchmarking.md gives the device command.
#
#   bash benchmarks/gpu.sh                       # BUDGET=480: no new cell starts after that many seconds
#   WHEELS=".gpu other/" PYTHON=... bash benchmarks/gpu.sh --models tiny --device cpu ...   # the rehearsal
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/gpu/$(date -u +%F)}
WHEELS=${WHEELS:-.gpu}
SITE=${SITE:-/tmp/modomo-site}
BUDGET=${BUDGET:-480}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 HF_HUB_OFFLINE=1 YOLO_VERBOSE=False
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>/dev/null || true
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
# The packages modomo imports that such a machine may lack (the import names of .gpu/requirements.txt's).
IMPORTS="diffusers, ultralytics, sam2, hydra, boto3, c2pa, cryptography, spandrel, pillow_heif, segno, peft"

if ! "$PY" -c "import $IMPORTS" 2>/dev/null; then
  links=()
  for folder in $WHEELS; do
    [ -f "$folder/requirements.txt" ] && links+=(--find-links "$folder")
  done
  if [ ${#links[@]} -eq 0 ]; then
    echo "gpu.sh: modomo's packages do not import and no wheels are in '$WHEELS': run make gpu-bundle and carry .gpu" >&2
    exit 1
  fi
  first=${WHEELS%% *}
  started=$(date +%s)
  "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
    --upgrade --target "$SITE" "${links[@]}" -r "$first/requirements.txt" 2>&1 | tee "$OUT/install.log"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  echo "gpu.sh: installed $(grep -c . "$first/requirements.txt") wheels from $WHEELS into $SITE in $(( $(date +%s) - started )) s" \
    | tee -a "$OUT/install.log"
  "$PY" -c "import $IMPORTS" 2>&1 | tee -a "$OUT/install.log" || { echo "gpu.sh: still missing after the install" >&2; exit 1; }
fi
"$PY" benchmarks/gpu_checks.py --out "$OUT" --budget "$BUDGET" "$@" 2>&1 | tee "$OUT/gpu_checks.log"
