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

# The resolved versions `make demo` and `make test` install (`pip install .` stays unpinned).
LOCK := requirements/lock.txt

.PHONY: venv demo test lint typecheck pytest wheel-check lock clean

$(BIN)/demix: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(TORCH_PIP_ARGS) -c $(LOCK)
	$(BIN)/python -m pip install -q -e ".[dev]" -c $(LOCK)
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
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

test: lint typecheck pytest

# Build the wheel, install it into a fresh virtualenv, use it from another directory (CI runs this).
wheel-check: venv
	VENV=$(VENV) scripts/ci_wheel.sh

# Regenerate the lock from this venv (after changing pyproject.toml's dependencies and installing
# them). torch's local label (+cpu) is dropped so that a CUDA build of the same version satisfies it.
lock:
	test -x $(BIN)/python || { echo "no $(VENV): run make venv first" >&2; exit 1; }
	{ echo "# Resolved versions of demix's dependencies (dev extras included) that \`make demo\` and \`make test\`"; \
	  echo "# install (\`pip install -c requirements/lock.txt\`). Regenerate with \`make lock\`. torch is the CPU"; \
	  echo "# build (2.13.0+cpu); the pin has no local label so a CUDA build of the same version satisfies it."; \
	  $(BIN)/python -m pip freeze --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/'; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

clean:
	rm -rf $(VENV) runs/demo .pytest_cache .mypy_cache .ruff_cache
