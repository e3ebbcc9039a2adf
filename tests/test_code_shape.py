"""Small files and short functions (../shared/STYLE.md): no file in demix/ over 400 lines and no
function over 80 lines, nested functions included (a CLI ``register`` that defines its commands
inside counts them all: define the commands at module level instead)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "demix"
MAX_FILE = 400
MAX_FUNCTION = 80


def long_functions(source: str, name: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            n = (node.end_lineno or node.lineno) - node.lineno + 1
            if n > MAX_FUNCTION:
                out.append(f"{name}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_file_over_400_lines() -> None:
    long = [
        f"{p.relative_to(ROOT.parent)} ({n} lines)"
        for p in sorted(ROOT.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_FILE
    ]
    assert not long, "split these files:\n" + "\n".join(long)


def test_no_function_over_80_lines() -> None:
    long = [
        f
        for p in sorted(ROOT.rglob("*.py"))
        for f in long_functions(p.read_text(), str(p.relative_to(ROOT.parent)))
    ]
    assert not long, "split these functions:\n" + "\n".join(long)


def test_the_length_check_can_fail() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION - 1))
    assert long_functions(f"def f():\n{body}\n", "m.py") == []
    assert long_functions(f"def f():\n{body}\n    y = 0\n", "m.py") == [
        f"m.py:1 f ({MAX_FUNCTION + 1} lines)"
    ]
    nested = f"def outer():\n    def inner():\n        pass\n{body}\n"
    assert long_functions(nested, "m.py") == [f"m.py:1 outer ({MAX_FUNCTION + 2} lines)"]
