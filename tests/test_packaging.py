"""What `pip install demix` declares is what demix imports.

The dev venv holds every extra and every dev tool, so a module demix (or a library it calls) imports
without declaring it works here and fails for a user: `lm_eval.models.huggingface` needs accelerate,
which lm-eval declares only under its ``hf`` extra. These tests walk the declared requirement tree
(extras included where demix asks for them) and hold demix's imports to it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from requirement_tree import project_requirements, walk  # noqa: E402

# Top-level modules of demix's optional extras: imported only where the extra is used.
OPTIONAL = {"triton": "gpu", "mergekit": "mergekit", "psycopg2": "postgres", "optuna_dashboard": "dashboard"}


def declared_closure() -> set[str]:
    """Every distribution `pip install demix` installs: pyproject's dependencies, walked with extras."""
    tree = walk(project_requirements())
    assert not tree.missing, f"declared but not installed in the dev venv: {tree.missing}"
    return tree.installed | {"demix"}


def module_owners() -> dict[str, set[str]]:
    """Top-level module -> the installed distributions that provide it."""
    return {m: {canonicalize_name(d) for d in ds} for m, ds in metadata.packages_distributions().items()}


def test_every_import_in_demix_is_declared() -> None:
    closure, owners = declared_closure(), module_owners()
    undeclared: dict[str, list[str]] = {}
    for path in sorted((REPO / "demix").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names}:
                dists = owners.get(top)
                if top in sys.stdlib_module_names or top in OPTIONAL or not dists or dists & closure:
                    continue
                undeclared.setdefault(top, []).append(str(path.relative_to(REPO)))
    assert not undeclared, f"imported but not in pyproject's dependencies: {undeclared}"


WALK = """
import importlib, json, pkgutil, sys
import demix
bad, optional = {}, {}
for info in pkgutil.walk_packages(demix.__path__, "demix."):
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        (optional if top in sys.argv[1].split(",") else bad)[info.name] = str(e)
print(json.dumps({"bad": bad, "optional": optional}))
"""


def closure_site(site: Path, closure: set[str]) -> None:
    """A site-packages holding only ``closure``: links to each distribution's installed top-level
    files and its metadata, so imports and availability checks see what a user's install has."""
    site.mkdir(parents=True, exist_ok=True)
    for name in closure - {"demix"}:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        root = Path(str(dist.locate_file("")))
        for top in {f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] != ".."}:
            link = site / top
            if not link.exists() and (root / top).exists():
                link.symlink_to(root / top)


def test_every_demix_module_imports_with_only_the_declared_requirements(tmp_path: Path) -> None:
    """Import each module of demix in a virtualenv that holds only the declared requirement tree: a
    library demix calls that needs an undeclared one (lm-eval's HF model needs accelerate) fails here
    as it would for a user."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    py = tmp_path / "venv" / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    closure_site(Path(purelib), declared_closure())
    res = subprocess.run(
        [py, "-c", WALK, ",".join(sorted(OPTIONAL))], capture_output=True, text=True, cwd=tmp_path,
        timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-4000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert not out["bad"], out["bad"]
    assert set(out["optional"]) <= {"demix.merge.triton_kernel"}, out["optional"]  # the gpu extra's home
