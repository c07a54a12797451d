# Two entry points for a fresh machine:
#   make run    -> the main job: a seed-replicated dropout ablation on MNIST-1D (no download)
#   make test   -> the test suite
# Each creates its own virtual environment (.venv) when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# `make run` installs only what the main job needs (the `run` extra); the tests, lint and benchmarks the `dev` extra
RUN_STAMP := $(VENV)/.jtricks-run-installed
STAMP := $(VENV)/.jtricks-installed

.PHONY: run test test-fast lint venv bench bench-quick clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[run]"
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

run: $(RUN_STAMP)
	$(PY) -m jtricks run dropout_mnist1d --out runs/dropout_mnist1d --overwrite

test: $(STAMP)
	$(PY) -m pytest -n 2 tests

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-quick: $(STAMP)
	$(PY) -m benchmarks.run --quick

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) runs .pytest_cache
