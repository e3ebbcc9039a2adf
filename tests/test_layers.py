"""The package layering of docs/INTERFACES.md ("Layout and layering"), enforced: a package imports only packages below it, and no
two modules import each other, directly or through others.

Every import counts, at module level, inside functions and under ``TYPE_CHECKING``: a function-level
import keeps ``demix --help`` fast, but it is still an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "demix"

# Bottom to top. A package may import itself and anything before it in this list.
LAYERS = (
    "errors",
    "util",
    "config",
    "corpora",
    "mixture",
    "run",
    "data",
    "train",
    "merge",
    "evaluate",
    "search",
    "law",
    "recommend",
    "export",
    "validate",
    "compare",
    "report",
    "preflight",
    "pipeline",
    "cli",
    "__main__",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The demix modules ``name`` imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "demix")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "demix":
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.add(sub if sub in known else mod)
    out.discard(name)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) & known for name, path in mods.items()}


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # demix/__init__.py: the version string only
        return -1
    return LAYERS.index(parts[1])


def test_every_package_has_a_layer() -> None:
    for module in _modules():
        parts = module.split(".")
        if len(parts) > 1:
            assert parts[1] in LAYERS, f"{module}: add its package to LAYERS (and to DESIGN.md)"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets if _layer(t) > _layer(m))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_upward_imports() -> None:
    bad = upward_imports(_graph())
    assert not bad, "imports against DESIGN.md's layering:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    found = cycles(_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize(
    ("graph", "upward", "cyclic"),
    [
        ({"demix.merge.engine": {"demix.search.driver"}, "demix.search.driver": set()}, 1, 0),
        ({"demix.search.driver": {"demix.merge.engine"}, "demix.merge.engine": set()}, 0, 0),
        ({"demix.law.a": {"demix.law.b"}, "demix.law.b": {"demix.law.a"}}, 0, 1),
    ],
)
def test_the_checks_can_fail(graph: dict[str, set[str]], upward: int, cyclic: int) -> None:
    assert len(upward_imports(graph)) == upward
    assert len(cycles(graph)) == cyclic


# Pure cores (../shared/DESIGN.md): arrays and dataclasses in and out, no run directory, no files.
PURE = ("demix.mixture", "demix.law")
IO_MODULES = (
    "demix.law.stage",
    "demix.law.run_io",
    "demix.law.files",
)  # the law's run-directory and user-file I/O
PURE_MAY_IMPORT = (
    "demix.errors",
    "demix.util.stats",
    "demix.util.units",
    "demix.config",
    "demix.mixture",
    "demix.law",
)


def impure_imports(graph: dict[str, set[str]]) -> list[str]:
    def pure(m: str) -> bool:
        return any(m == p or m.startswith(p + ".") for p in PURE) and m not in IO_MODULES and m != "demix.law"

    def allowed(t: str) -> bool:
        return t not in IO_MODULES and any(t == p or t.startswith(p + ".") for p in PURE_MAY_IMPORT)

    return sorted(f"{m} -> {t}" for m, ts in graph.items() if pure(m) for t in ts if not allowed(t))


def test_pure_cores_do_no_io() -> None:
    bad = impure_imports(_graph())
    assert not bad, "pure modules importing I/O:\n" + "\n".join(bad)


def test_the_purity_check_can_fail() -> None:
    assert impure_imports({"demix.law.mixing": {"demix.run.dir"}}) == ["demix.law.mixing -> demix.run.dir"]
    assert impure_imports({"demix.law.mixing": {"demix.law.stage"}}) == [
        "demix.law.mixing -> demix.law.stage"
    ]
    assert impure_imports({"demix.law.stage": {"demix.run.dir"}}) == []
