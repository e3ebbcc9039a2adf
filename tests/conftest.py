"""Shared fixtures: one tiny real run (prepared data, base model, components) built once per session.

Tests that write into a run copy it first with :func:`copy_run` so the shared one stays pristine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest
from filelock import FileLock

from demix.config import ExperimentConfig, load_config
from demix.run import RunDir

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TINY_CONFIG = TESTS / "configs" / "tiny.yaml"


def shared_fixture(name: str) -> Path:
    """A folder of data measured by others, read where it lies: ``../shared/fixtures/<name>`` beside
    the checkout (CI lays shared/ there), or under ``$DEMIX_SHARED_FIXTURES``. Never copied in here."""
    root = Path(os.environ.get("DEMIX_SHARED_FIXTURES", REPO.parent / "shared" / "fixtures"))
    path = root / name
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: the shared fixtures are not there; put shared/ beside the checkout "
            "or set DEMIX_SHARED_FIXTURES to its fixtures/ folder"
        )
    return path


def tiny_config(run_dir: Path, *overrides: str) -> ExperimentConfig:
    """The tiny test config with its run directory set (and any ``key=value`` overrides)."""
    return load_config(TINY_CONFIG, [f"run_dir={run_dir}", *overrides])


def copy_run(
    src: RunDir, dst: Path, *, parts: tuple[str, ...] = ("config.yaml", "data", "models", ".stages")
) -> RunDir:
    """Copy the parts of a run a test needs into ``dst`` (a fresh directory) and return it."""
    dst.mkdir(parents=True, exist_ok=True)
    for part in parts:
        p = src.root / part
        if p.is_dir():
            shutil.copytree(p, dst / part, dirs_exist_ok=True)
        elif p.is_file():
            shutil.copy2(p, dst / part)
    return RunDir(dst)


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _shared_dir(tmp_path_factory, "tiny-run")


@pytest.fixture(scope="session")
def tiny_cfg(tiny_run_dir: Path) -> ExperimentConfig:
    return tiny_config(tiny_run_dir)


def _shared_dir(factory: pytest.TempPathFactory, name: str) -> Path:
    """A session directory that every pytest-xdist worker shares (one per plain session)."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the workers' temp dirs are siblings under one session root
    path = base / name
    path.mkdir(exist_ok=True)
    return path


def _build_once(root: Path, step: str, build: Callable[[], None]) -> None:
    """Run ``build`` once across all xdist workers: the first takes the lock and builds, the others
    wait for it and find the marker. A build that raised leaves no marker, so the next one retries."""
    marker = root / f".built-{step}"
    with FileLock(str(root / f".lock-{step}")):
        if not marker.exists():
            build()
            marker.touch()


@pytest.fixture(scope="session")
def prepared_run(tiny_cfg: ExperimentConfig) -> RunDir:
    """The tiny config's data prepared (tokenizer, token files, manifest)."""
    from demix.data import prepare

    run = RunDir.for_config(tiny_cfg)
    _build_once(run.root, "prepare", lambda: prepare(tiny_cfg, run, progress=False))
    return run


@pytest.fixture(scope="session")
def trained_run(tiny_cfg: ExperimentConfig, prepared_run: RunDir) -> RunDir:
    """The prepared tiny run plus a trained base model and one component per domain."""
    from demix.train import train_base, train_components

    def build() -> None:
        train_base(tiny_cfg, prepared_run, progress=False)
        train_components(tiny_cfg, prepared_run, progress=False)

    _build_once(prepared_run.root, "train", build)
    return prepared_run
