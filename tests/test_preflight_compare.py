"""The comparison's rules, checked before anything trains: the law's swarm of K + 2 mixtures, hand
mixtures naming candidates, and DeMix's recommendation for ``demix compare RUN`` on its own; each
reported by its key (exit 2, no traceback), and only when the compare stage will run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from demix.config import dump_config, load_config
from demix.pipeline.run import skipped_optional
from demix.preflight import COMPARE_ALONE, problems, stages_but
from demix.run import RunDir
from tests.conftest import REPO, TINY_CONFIG

CANDIDATES = "prose, code, math, comments, tables"  # the tiny config's 5: the law needs 7 mixtures


def _keys(found: list[str]) -> set[str]:
    return {p.split(":")[0].split("=")[0] for p in found}


def _main(args: list[str]) -> int:
    from demix.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    return int(e.value.code or 0)


def test_the_law_needs_k_plus_2_swarm_mixtures() -> None:
    found = problems(load_config(TINY_CONFIG, ["compare.swarm.count=6"]))
    assert len(found) == 1 and found[0].startswith("compare.swarm.count=6: "), found
    assert "K + 2 = 7" in found[0] and "reuse_validation count towards it" in found[0]
    assert problems(load_config(TINY_CONFIG, ["compare.swarm.count=7"])) == []
    # without the law in compare.methods the swarm (RegMix's) may be smaller
    assert problems(load_config(TINY_CONFIG, ["compare.swarm.count=2", "compare.methods=[regmix]"])) == []
    # validation references reused into the swarm do not lower the count the config must give
    on = load_config(TINY_CONFIG, ["compare.swarm.count=3", "compare.swarm.reuse_validation=true"])
    assert _keys(problems(on)) == {"compare.swarm.count"}


def test_the_laws_fitting_subset_is_at_least_k_plus_2_and_leaves_a_run_out() -> None:
    for subset in (6, 16):
        found = problems(load_config(TINY_CONFIG, ["compare.swarm.count=16", f"compare.law.subset={subset}"]))
        assert len(found) == 1 and found[0].startswith(f"compare.law.subset={subset}: "), found
        assert "at least K + 2 = 7 and below 16" in found[0]
    assert problems(load_config(TINY_CONFIG, ["compare.swarm.count=16", "compare.law.subset=12"])) == []


def test_hand_mixtures_name_only_candidates() -> None:
    mix = 'compare.mixtures={"team": {"prose": 0.5, "poetry": 0.3, "verse": 0.2}, "ok": {"code": 1}}'
    found = problems(load_config(TINY_CONFIG, [mix]))
    assert found == [
        f"compare.mixtures.team: 'poetry' is not a candidate ({CANDIDATES})",
        f"compare.mixtures.team: 'verse' is not a candidate ({CANDIDATES})",
    ]


def test_the_recommendation_is_required_only_for_compare_alone(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    cfg = load_config(TINY_CONFIG, [f"run_dir={run.root}"])
    alone = ("validate", "compare", COMPARE_ALONE)  # what `demix compare RUN` checks
    found = problems(cfg, run, stages=alone)
    assert _keys(found) == {"compare.methods"} and str(run.export / "recommendation.json") in found[0]
    assert problems(cfg, run) == []  # demix config validate: the run may not have started yet
    assert problems(cfg, run, stages=stages_but(())) == []  # demix run --with-compare writes it first
    no_demix = load_config(TINY_CONFIG, [f"run_dir={run.root}", "compare.methods=[prior, uniform]"])
    assert problems(no_demix, run, stages=alone) == []
    (run.export).mkdir(parents=True)
    (run.export / "recommendation.json").write_text("{}")
    assert problems(cfg, run, stages=alone) == []


def test_demix_run_checks_compare_only_when_it_will_compare() -> None:
    assert skipped_optional() == ("compare", "validate")
    assert skipped_optional(with_compare=True) == ("validate",)
    assert skipped_optional(force=["compare"]) == ("validate",)  # --force runs an optional stage
    assert skipped_optional(with_compare=True, until="export") == ("compare", "validate")
    # --until an optional stage that is not asked for stops nothing (run_all's loop)
    assert skipped_optional(with_validate=True, until="compare") == ("compare",)
    cfg = load_config(TINY_CONFIG, ["compare.swarm.count=3"])
    assert problems(cfg, stages=stages_but(skipped_optional())) == []
    assert _keys(problems(cfg, stages=stages_but(skipped_optional(with_compare=True)))) == {
        "compare.swarm.count"
    }
    assert set(stages_but(("compare", "validate"))) >= {"search", "merge", "evaluate", "export"}


def test_cli_run_refuses_with_compare_and_runs_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import demix.pipeline

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(demix.pipeline, "run_all", lambda cfg, run, **kw: calls.append(kw) or {})
    args = ["run", str(TINY_CONFIG), "--run-dir", str(tmp_path / "run"), "--set", "compare.swarm.count=3"]
    assert _main([*args, "--with-compare"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {TINY_CONFIG}: compare.swarm.count=3: ") and not calls
    assert _main(args) == 0  # the compare stage does not run: its swarm is not checked
    assert calls and calls[0]["with_compare"] is False


def test_cli_compare_alone_without_a_recommendation_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.config.write_text(dump_config(load_config(TINY_CONFIG, [f"run_dir={run.root}"])))
    assert _main(["compare", str(run.root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "compare.methods: demix compares the search's recommendation" in err
    assert not (run.root / "compare").exists()  # refused before anything trained


def test_config_validate_names_every_compare_key_without_a_traceback() -> None:
    proc = subprocess.run(
        [
            sys.executable, "-m", "demix", "config", "validate", str(TINY_CONFIG),
            "--set", "compare.swarm.count=4", "--set", 'compare.mixtures={"team": {"poetry": 1}}',
        ],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"error: {TINY_CONFIG}: 2 problems:")
    assert "compare.swarm.count=4: " in proc.stderr and "compare.mixtures.team: 'poetry'" in proc.stderr
