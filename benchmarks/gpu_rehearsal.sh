#!/usr/bin/env bash
# make gpu-rehearsal: the GPU session tried here first, on the CPU with the tiny models.
#
# A fresh venv gets only what the GPU machine already has of modomo's needs: torch, torchvision,
# transformers, accelerate, opencv, typer and rich, and the rest of .gpu/machine.txt (numpy, pillow,
# matplotlib...), at the versions read on that machine where known. Then benchmarks/gpu.sh runs as it
# would there: modomo's packages do not import, so it installs .gpu/ offline (--no-index --no-deps) and
# runs gpu_checks.py. It fails if any import is missing or any check fails. Where this machine's Python is
# not the GPU machine's 3.12 (REHEARSAL_PYTHON picks another), the few wheels with compiled parts are fetched
# again for it beside .gpu/, and a version read on the machine that has no wheel for it is replaced by ours.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .gpu/requirements.txt ] || { echo "gpu-rehearsal: no .gpu/: run make gpu-bundle first" >&2; exit 1; }
HERE=.gpu-rehearsal
rm -rf "$HERE"
"${REHEARSAL_PYTHON:-python3}" -m venv "$HERE/venv"
VPY=$HERE/venv/bin/python
here_python=$("$VPY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
machine=.gpu/machine.txt
if [ "$here_python" != 3.12 ]; then
  # the wheels with compiled parts, and the machine's versions where they install, for this Python
  .venv/bin/python benchmarks/gpu_bundle.py --python "$here_python" --out "$HERE/wheels" --rehearsal | grep -v ': downloaded$'
  machine=$HERE/wheels/machine.txt
fi
echo "gpu-rehearsal: a fresh venv (Python $here_python) with only the GPU machine's own packages ($machine)"
"$VPY" -m pip install --quiet --disable-pip-version-check -r "$machine" > "$HERE/pip.log" 2>&1 \
  || { grep -v "^WARNING: Location" "$HERE/pip.log" >&2; exit 1; }
OUT=$HERE/out PYTHON=$VPY SITE=$HERE/site WHEELS=".gpu $HERE/wheels" MODOMO_CACHE=$HERE/cache BUDGET=300 \
  bash benchmarks/gpu.sh --models tiny --device cpu --sizes 128x96 --batches 1,2 --steps 2 --images 2 \
  --compile-cells ''
test -s "$HERE/out/install.log" || { echo "gpu-rehearsal: gpu.sh installed nothing: the venv was not bare" >&2; exit 1; }
test -s "$HERE/out/checks.json" && test -s "$HERE/out/grid.json"
echo "gpu-rehearsal: passed; results in $HERE/out"
