"""requirements/lock.txt pins every dependency pyproject.toml names (runtime and the dev extra), each
to a version its range admits, and the Makefile installs the test and demo venv with it."""

from __future__ import annotations

import re

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

LOCK = REPO / "requirements" / "lock.txt"
# Extras that are not part of the test venv (nothing installs them there, so nothing pins them).
UNLOCKED_EXTRAS = {"dashboard"}


def _pins() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"{LOCK}: {line!r} is not an exact name==version pin"
        pins[canonicalize_name(m[1])] = Version(m[2])
    return pins


def _named() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra, items in project["optional-dependencies"].items():
        if extra not in UNLOCKED_EXTRAS:
            reqs += [Requirement(r) for r in items]
    return reqs


def test_the_lock_pins_every_dependency_of_pyproject_within_its_range() -> None:
    pins = _pins()
    missing = [str(r) for r in _named() if canonicalize_name(r.name) not in pins]
    assert not missing, f"{LOCK} lacks {missing}: run `make lock`"
    outside = [
        f"{r} (locked {pins[canonicalize_name(r.name)]})"
        for r in _named()
        if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)
    ]
    assert not outside, f"{LOCK} pins versions pyproject.toml does not allow: {outside}"


def test_the_lock_has_no_local_torch_label_and_no_demix() -> None:
    pins = _pins()
    assert not pins["torch"].local, "torch's pin must admit the CPU and the CUDA build"
    assert "demix" not in pins


def test_the_makefile_installs_with_the_lock() -> None:
    text = (REPO / "Makefile").read_text()
    assert "LOCK := requirements/lock.txt" in text
    installs = [ln for ln in text.splitlines() if "-m pip install" in ln and "--upgrade pip" not in ln]
    assert installs and all("-c $(LOCK)" in ln for ln in installs), installs
    assert re.search(r"^lock:", text, re.M)
