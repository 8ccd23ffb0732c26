# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# This machine's pip config names extra indexes that do not all exist: hide that noise.
PIP_NOISE := is ignored: it is neither a file nor a directory

.PHONY: install run test test-fast bench gpu-check lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]' 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hposweep run configs/smoke.yaml

# Everything, as CI runs it: one test process per core (most tests wait on processes and
# I/O); whole files per process, so a module's shared sweep runs once.
test: $(STAMP)
	$(BIN)/pytest -n auto --dist loadfile --durations=25

# After every change: the tests that start no process and need no server (under 2 minutes).
test-fast: $(STAMP)
	$(BIN)/pytest -n auto -m "not slow and not services"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# On a machine with a CUDA GPU: the GPU proof (throughput, workers, out of memory, memory
# from trial to trial, kill -9 + resume), one JSON summary; elsewhere it says there is none.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf outputs/hpo outputs/mlflow.db outputs/mlartifacts
