"""The pipeline's stage bookkeeping, the CLI's start-up cost, and `demix run` on the tiny run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from demix.config import ExperimentConfig
from demix.pipeline import STAGE_NAMES, downstream, run_all, stage_hashes, status
from demix.run import RunDir
from demix.run.records import mark_stage_done
from tests.conftest import copy_run, tiny_config


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "demix", *args], capture_output=True, text=True, cwd=cwd)


def test_help_does_not_import_heavy_libraries() -> None:
    code = "import sys; import demix.cli; print(sorted(m for m in ('torch','transformers','lm_eval','optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_changing_a_late_section_keeps_early_stages(tmp_path: Path) -> None:
    a = stage_hashes(tiny_config(tmp_path))
    b = stage_hashes(tiny_config(tmp_path, "export.target_tokens=7M"))
    late = {"search", "law", "recommend", "export", "compare", "report"}
    assert {n for n in STAGE_NAMES if a[n] != b[n]} == late
    c = stage_hashes(tiny_config(tmp_path, "train.lr=1e-3"))
    assert {n for n in STAGE_NAMES if a[n] != c[n]} == set(STAGE_NAMES) - {"prepare"}


@pytest.mark.parametrize(
    "override",
    [
        "train.threads=2",
        "train.log_every=3",
        "train.checkpoint_every=7",
        "train.progress=true",
        "train.keep_checkpoint=true",
        "search.workers=2",
        "law.threads=2",
        "evaluate.batch_size=8",
    ],
)
def test_a_non_result_key_reruns_nothing(tmp_path: Path, override: str) -> None:
    a, b = stage_hashes(tiny_config(tmp_path)), stage_hashes(tiny_config(tmp_path, override))
    assert a == b


@pytest.mark.parametrize(
    ("override", "first"),
    [
        ("export.formats=[json]", "export"),
        ("train.lr=1e-3", "train-base"),
        ("train.component_tokens=60K", "train-components"),
        ("tokenizer.vocab_size=512", "prepare"),
        ("law.ridge=0.001", "law"),
        ("export.choose=best_trial", "recommend"),
    ],
)
def test_a_result_key_reruns_its_stages_and_downstream(tmp_path: Path, override: str, first: str) -> None:
    a, b = stage_hashes(tiny_config(tmp_path)), stage_hashes(tiny_config(tmp_path, override))
    assert {n for n in STAGE_NAMES if a[n] != b[n]} == set(downstream(first))


def test_status_names_the_changed_keys(tmp_path: Path) -> None:
    from demix.pipeline import stage_inputs

    run = RunDir(tmp_path)
    old = stage_inputs(tiny_config(tmp_path))["train-base"]
    mark_stage_done(run.root, "train-base", old.hash, keys=old.keys, needs=old.needs)
    st = {s.name: s for s in status(tiny_config(tmp_path, "train.lr=1e-3"), run)}["train-base"]
    assert st.state == "stale" and st.changed == ["train.lr: 0.005 -> 0.001"]


def test_downstream_is_ordered_and_closed() -> None:
    assert downstream("search") == ["search", "law", "recommend", "export", "compare", "report"]
    assert downstream("train-components")[:2] == ["train-components", "search"]
    assert "validate" in downstream("train-components")


def test_status_reports_done_stale_pending(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    run = RunDir(tmp_path)
    mark_stage_done(run.root, "prepare", stage_hashes(cfg)["prepare"])
    mark_stage_done(run.root, "train-base", "an-old-hash")
    states = {s.name: s.state for s in status(cfg, run)}
    assert states["prepare"] == "done" and states["train-base"] == "stale" and states["search"] == "pending"


def test_unknown_stage_is_a_user_error(tmp_path: Path) -> None:
    out = _cli("run", "tests/configs/tiny.yaml", "--run-dir", str(tmp_path), "--force", "trian")
    assert out.returncode == 2, out.stderr
    assert "unknown stage 'trian'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_run_end_to_end_then_skips(trained_run: RunDir, tiny_cfg: ExperimentConfig, tmp_path: Path) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    cfg = tiny_config(run.root)
    first = run_all(cfg, run)
    assert first["search"] == "ran" and first["report"] == "ran"
    rec = json.loads((run.export / "recommended_mixture.json").read_text())
    assert rec["provenance"]["demix_version"]
    assert (run.report / "report.html").is_file()
    again = run_all(cfg, run)
    assert set(again.values()) == {"skipped"}
    states = {s.name: s.state for s in status(cfg, run) if not s.optional}
    assert set(states.values()) == {"done"}
    cached = (run.export / "recommendation.json").stat().st_mtime_ns  # the recommend stage's
    (run.export / "megatron_data_blend.txt").write_text("stale")
    redo = run_all(cfg, run, force=["export"])
    assert redo["export"] == "ran" and redo["report"] == "ran" and redo["search"] == "skipped"
    assert (run.export / "recommendation.json").stat().st_mtime_ns == cached  # not recomputed
    assert (run.export / "megatron_data_blend.txt").read_text() != "stale"


def test_redoing_a_stage_moves_its_models_aside_complete(tmp_path: Path) -> None:
    from demix.pipeline import STAGES, set_aside

    run = RunDir(tmp_path)
    files = {
        "models/components/prose/model.safetensors": b"w" * 100,
        "models/components/code/config.json": b"{}",
    }
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    where = set_aside(run, next(s for s in STAGES if s.name == "train-components"))
    assert where is not None and where.parent == tmp_path / "superseded"
    assert where.name.startswith("train-components-")
    for rel, data in files.items():
        assert (where / rel).read_bytes() == data and not (tmp_path / rel).exists()


def test_a_second_command_on_a_locked_run_refuses(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from demix.run.lock import acquire; "
            f"acquire({str(tmp_path)!r}, 'demix run held'); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        out = _cli("run", "tests/configs/tiny.yaml", "--run-dir", str(tmp_path))
        assert out.returncode == 2, out.stderr
        assert f"is in use by pid {holder.pid} (demix run held, since" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        holder.kill()
        holder.wait()
    from demix.run.lock import acquire, release

    notes: list[str] = []
    release(acquire(tmp_path, "demix run again", note=notes.append))  # the dead holder's lock is taken over
    assert notes and str(holder.pid) in notes[0]


def test_brought_components_train_nothing(prepared_run: RunDir, tmp_path: Path) -> None:
    base = tiny_config(tmp_path / "run")
    comps = ", ".join(f"{d}: {tmp_path / 'elsewhere' / d}" for d in base.domains)
    cfg = tiny_config(tmp_path / "run", "merge.components={" + comps + "}")
    states = {st.name: (st.state, st.changed) for st in status(cfg, RunDir.for_config(cfg))}
    for name in ("train-base", "train-components"):
        assert states[name] == ("not needed", ["merge.components names the components"])
    assert states["search"][0] == "pending"
    run = copy_run(prepared_run, tmp_path / "run", parts=("data",))
    events: list[tuple[str, str]] = []
    out = run_all(cfg, run, until="train-components", on_stage=lambda n, e, d: events.append((n, e)))
    assert out == {"prepare": "ran", "train-base": "not needed", "train-components": "not needed"}
    assert ("train-base", "unneeded") in events
    assert not (run.root / "models").exists()


def _search_rows(run: RunDir) -> list[dict[str, str]]:
    import csv

    with open(run.trials_csv, newline="") as fh:
        return [
            {k: v for k, v in row.items() if k.startswith(("number", "w:"))} for row in csv.DictReader(fh)
        ]


# The smallest search that still scores real proxies: few documents, few bootstrap refits.
_SMALL_SEARCH = ("evaluate.builtin.bpb_docs=4", "evaluate.builtin.accuracy_docs=16", "export.bootstrap=2")


@pytest.mark.slow
def test_more_trials_continue_the_search(trained_run: RunDir, tmp_path: Path) -> None:
    """Raising search.n_trials (what export's warning asks for) scores only the new trials: the study
    continues, nothing is set aside, and it holds exactly the trials a fresh run of that size scores."""
    run = copy_run(trained_run, tmp_path / "run")
    run_all(tiny_config(run.root, "search.n_trials=2", *_SMALL_SEARCH), run, until="search")
    first = _search_rows(run)
    more = tiny_config(run.root, "search.n_trials=4", *_SMALL_SEARCH)
    search = next(s for s in status(more, run) if s.name == "search")
    assert search.state == "stale" and search.changed[0] == "search.n_trials: 2 -> 4"
    assert "continued, not redone" in search.changed[-1]
    events: list[tuple[str, str, str]] = []
    out = run_all(more, run, until="search", on_stage=lambda *e: events.append(e))
    assert out["search"] == "ran" and ("search", "continue", "search.n_trials: 2 -> 4") in events
    assert not any(e == "moved" for _, e, _ in events) and not (run.root / "superseded").exists()
    grown = _search_rows(run)
    assert len(grown) == len(first) + 2 and grown[: len(first)] == first
    fresh = copy_run(trained_run, tmp_path / "fresh")
    run_all(tiny_config(fresh.root, "search.n_trials=4", *_SMALL_SEARCH), fresh, until="search")
    assert _search_rows(fresh) == grown


def test_only_larger_growing_keys_with_nothing_else_changed_continue() -> None:
    from demix.pipeline.keys import StageInputs, grown_only

    def rec(n: int, seed: int = 0, base: str = "h") -> dict[str, object]:
        return {"keys": {"search.n_trials": n, "search.seed": seed}, "needs": {"train-components": base}}

    now = StageInputs("x", {"search.n_trials": 8, "search.seed": 0}, {"train-components": "h"})
    grows = ("search.n_trials",)
    assert grown_only(grows, rec(4), now) == ["search.n_trials"]
    assert grown_only(grows, rec(16), now) is None  # fewer
    assert grown_only(grows, rec(8), now) is None  # nothing changed
    assert grown_only(grows, rec(4, seed=1), now) is None  # another key too
    assert grown_only(grows, rec(4, base="other"), now) is None  # the components changed
    assert grown_only((), rec(4), now) is None and grown_only(grows, None, now) is None


def test_growing_keys_are_integer_keys_their_stage_reads(tmp_path: Path) -> None:
    from demix.pipeline import STAGES
    from demix.pipeline.keys import key_values

    cfg = tiny_config(tmp_path)
    declared = {k: st.name for st in STAGES for k in st.grows}
    assert declared == {
        "search.n_trials": "search",
        "validate.mixtures": "validate",
        "compare.swarm.count": "compare",
    }
    for st in STAGES:
        read = key_values(cfg, st.reads, st.ignores)
        assert all(isinstance(read.get(k), int) for k in st.grows), st.name
