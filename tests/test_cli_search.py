"""``demix search`` through the real console entry: bad settings end with exit 2 naming them;
``--show`` prints the best trials."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from demix.run import RunDir
from demix.search import run_search
from tests.test_search_scoring import SyntheticScorer, synthetic_config


def _demix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "demix", *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("overrides", "extra", "needle"),
    [
        (["search.sampler=anneal"], [], "search.sampler"),
        (["search.constraints.min={code: 0.4, math: 0.4}"], [], "search.constraints"),
        (["search.constraints.max={prose: 0.3}"], [], "prose"),
        (["search.sampler=cmaes", "search.objectives=groups"], [], "search.sampler=cmaes"),
        ([], ["--storage", "postgresql://demix:x@127.0.0.1:9/nowhere"], "127.0.0.1:9"),
    ],
)
def test_bad_settings_exit_2_naming_them(
    tmp_path: Path, overrides: list[str], extra: list[str], needle: str
) -> None:
    cfg_path, _ = synthetic_config(tmp_path)
    sets = [a for o in overrides for a in ("--set", o)]
    res = _demix("search", cfg_path, *sets, *extra)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert needle in res.stderr, res.stderr
    assert "password" not in res.stderr and ":x@" not in res.stderr  # the URL's password is hidden


def test_show_prints_the_best_trials(tmp_path: Path) -> None:
    cfg_path, cfg = synthetic_config(tmp_path, n_trials=2)
    res = _demix("search", cfg_path, "--show")
    assert res.returncode == 2 and "run `demix search` first" in res.stderr
    run_search(cfg, RunDir.for_config(cfg), scorer_factory=SyntheticScorer, progress=False, recommend=False)
    res = _demix("search", cfg_path, "--show", "--top", "3")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("best 3 of 8 completed trials")
    assert "mix:prose" in lines[1] and len(lines) == 5
