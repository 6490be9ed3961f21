# `make demo` and `make test` work on a fresh clone: each builds .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test lint check bench gpu-check clean

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

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# ruff, then the design rules ruff cannot see (import cycles, module size, long signatures).
check: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python scripts/check_design.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# On a CUDA machine: the CUDA tests, then ResNet-18 images/s per phase; elsewhere one line, exit 0.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) demo-output
