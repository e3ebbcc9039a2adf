"""demix's requirement tree over what is installed: the distributions `pip install demix` brings.

Used by the GPU check's preflight (what a device machine lacks, to carry as wheels) and by
tests/test_packaging.py (demix imports nothing outside the tree). Extras are followed where a
requirement names them: ``lm-eval[hf]`` brings accelerate, plain ``lm-eval`` does not.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass, field
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def project_requirements(*extras: str) -> list[str]:
    """pyproject.toml's dependencies and those of ``extras`` (demix need not be installed)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *(r for e in extras for r in project["optional-dependencies"][e])]


@dataclass
class Tree:
    installed: set[str] = field(default_factory=set)  # canonical names
    missing: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # "name version: needs spec (by whom)"


def walk(requirements: list[str], by: str = "demix") -> Tree:
    """Follow ``requirements`` through the installed distributions' metadata, extras included."""
    tree = Tree()
    todo = [(Requirement(r), by) for r in requirements]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, parent = todo.pop()
        name, extras = canonicalize_name(req.name), frozenset(req.extras)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            if name not in tree.missing:
                tree.missing.append(name)
            continue
        tree.installed.add(name)
        if dist.version and req.specifier and not req.specifier.contains(dist.version, prereleases=True):
            tree.conflicts.append(f"{name} {dist.version}: needs {req.specifier} ({parent})")
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        envs = [{"extra": e} for e in sorted(extras)] or [{"extra": ""}]
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate(env) for env in envs):
                todo.append((sub, name))
    tree.missing.sort()
    tree.conflicts = sorted(set(tree.conflicts))
    return tree
