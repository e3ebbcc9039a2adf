# demix — two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build on CPU-only machines (pip finds it in the local wheel cache here, or pass
# TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" elsewhere). GPU users: see README.
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv demo test lint typecheck pytest wheel-check clean

$(BIN)/demix: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(BIN)/demix

venv: $(BIN)/demix

demo: venv
	$(BIN)/demix run configs/demo.yaml

lint: venv
	$(BIN)/ruff format --check demix tests scripts
	$(BIN)/ruff check demix tests scripts

typecheck: venv
	$(BIN)/mypy demix

pytest: venv
	$(BIN)/python -m pytest -q --durations=15

test: lint typecheck pytest

# Build the wheel, install it into a fresh virtualenv, use it from another directory (CI runs this).
wheel-check: venv
	VENV=$(VENV) scripts/ci_wheel.sh

clean:
	rm -rf $(VENV) runs/demo .pytest_cache .mypy_cache .ruff_cache
