# One command runs the main job (make demo), one passes the tests (make test).
# Both create .venv from a clean clone when it is missing and install the project with its dev extras.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.modomo-installed
# torch first and pinned: sam2 builds against the torch already installed.
TORCH  ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test lint clean chromium gpu-bundle gpu-rehearsal

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet 'hydra-core>=1.3.2' iopath tqdm
	SAM2_BUILD_CUDA=0 $(BIN)/python -m pip install --quiet --no-build-isolation 'sam2>=1.1'
	$(BIN)/python -m pip install --quiet --no-build-isolation -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/modomo transform examples/rooms --style boho --models tiny --out out/demo

# The report test screenshots report.html in Debian's headless Chromium.
CHROMIUM := $(shell command -v chromium || command -v chromium-browser)
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

chromium:
ifeq ($(CHROMIUM),)
	$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null
endif

# Two test processes, a test file each at a time (its module fixtures made once), one torch thread each
# (tests/conftest.py): the suite in about 60 % of the time of one process on two cores.
TEST_WORKERS ?= 2

test: lint chromium
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# A GPU session, prepared here: the wheels the GPU machine lacks into .gpu/ (carried with the tree; under
# the device tool's 64 MiB with it), then that session tried on the CPU in a bare venv (docs/benchmarking.md).
gpu-bundle: $(STAMP)
	$(BIN)/python benchmarks/gpu_bundle.py --out .gpu

gpu-rehearsal: $(STAMP)
	bash benchmarks/gpu_rehearsal.sh

clean:
	rm -rf out .pytest_cache .ruff_cache .gpu-rehearsal
