#!/usr/bin/env bash
# The wheel check (issue 15): build demix's wheel, install it into a fresh virtualenv and use it from
# another directory, so nothing demix reads at run time may live outside the package.
#
#   scripts/ci_wheel.sh            # uses .venv (make venv) for the build and the dependencies
#   VENV=/path/to/venv scripts/ci_wheel.sh
#
# The fresh virtualenv gets only the wheel; the dependencies (torch, lm-eval, ...) come from the dev
# venv's site-packages, added to sys.path without running its .pth files, so the editable install of
# the checkout stays invisible and nothing is downloaded.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-.venv}"
[[ "$venv" = /* ]] || venv="$repo/$venv"
dev_py="$venv/bin/python"
work="$(mktemp -d "${TMPDIR:-/tmp}/demix-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
t0=$SECONDS

echo "[wheel] building"
"$dev_py" -m pip wheel -q --no-deps --no-build-isolation "$repo" -w "$work/dist" >/dev/null
wheel="$(ls "$work"/dist/demix-*.whl)"
"$dev_py" - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
needed = ["demix/recipes/demo.yaml", "demix/py.typed", "demix/cli/__init__.py"]
missing = [n for n in needed if n not in names]
assert not missing, f"the wheel lacks {missing}"
EOF

echo "[wheel] installing into a fresh virtualenv"
base_py="$("$dev_py" -c 'import sys, os; print(os.path.realpath(sys._base_executable))')"
"$base_py" -m venv --without-pip "$work/venv"
py="$work/venv/bin/python"
dev_site="$("$dev_py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
new_site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import sys; sys.path.append('$dev_site')" >"$new_site/zz-demix-ci-deps.pth"
"$dev_py" -m pip --python "$py" install -q --no-deps --no-index "$wheel"

mkdir "$work/elsewhere"
cd "$work/elsewhere"  # not the checkout: configs are given by path, recipes must come from the wheel
"$py" -c "import demix, sys; p = demix.__file__; sys.exit(0 if p.startswith('$work/venv') else f'demix imported from {p}')"

echo "[wheel] demix config validate, every shipped config"
# configs/byo.yaml names checkpoints relative to where it runs: validate it in the layout the README
# describes (tiny models, laid out by the tests' helper with the dev venv).
"$dev_py" -c "import sys; sys.path.insert(0, '$repo'); from pathlib import Path; from tests.byo_tree import make_byo_tree; make_byo_tree(Path('$work/byo'), 'gpt2')" >/dev/null 2>&1
for cfg in "$repo"/configs/*.yaml; do
  if [ "$(basename "$cfg")" = byo.yaml ]; then
    (cd "$work/byo" && "$work/venv/bin/demix" config validate "$cfg")
  else
    "$work/venv/bin/demix" config validate "$cfg"
  fi
done
"$work/venv/bin/demix" config recipe demo | grep -q "candidates:"

echo "[wheel] demix prepare of the demo"
"$work/venv/bin/demix" prepare "$repo/configs/demo.yaml" --no-progress \
  --set corpora.builtin_bytes=300K --set tokenizer.vocab_size=512 --set tokenizer.sample_bytes=100K
test -s runs/demo/data/manifest.json

echo "[wheel] ok in $((SECONDS - t0)) s"
