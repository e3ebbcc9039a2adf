"""Hostile input: every file a user hands demix that is binary, not UTF-8, empty, truncated, a
directory where a file is expected (or the reverse), or holds values out of range ends in exit 2,
one message naming the culprit, no traceback, and not one byte changed in what was written before.

One table, run in-process through :func:`demix.cli.main` (a subprocess per case costs seconds each).
A second table (a prepared run and a checkpoint) covers `demix evaluate --checkpoint`: the checkpoint
directory, its safetensors, its tokenizer and task YAML.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import yaml

from demix.cli import main
from tests.conftest import TINY_CONFIG

DOMAINS = ("a", "b", "c")


def _law_csv(n: int = 10, seed: int = 0) -> str:
    """A measurement table whose losses follow a known law (so `demix law fit` succeeds on it)."""
    rng = np.random.default_rng(seed)
    R = rng.dirichlet(np.ones(len(DOMAINS)), size=n)
    head = [f"mix:{d}" for d in DOMAINS] + [f"loss:{d}" for d in DOMAINS]
    rows = [",".join(head)]
    for r in R:
        loss = [2.0 + 0.5 * np.exp(-2.0 * r[i]) for i in range(len(DOMAINS))]
        rows.append(",".join(f"{x:.6f}" for x in [*r, *loss]))
    return "\n".join(rows) + "\n"


def _mixtures_csv() -> str:
    return "mix:a,mix:b,mix:c\n0.2,0.3,0.5\n0.6,0.2,0.2\n"


def _config(**changes: object) -> bytes:
    data = yaml.safe_load(TINY_CONFIG.read_text())
    for key, value in changes.items():
        node = data
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return yaml.safe_dump(data, sort_keys=False).encode()


@pytest.fixture(scope="module")
def good_fit(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A valid fit JSON, made by the command under test."""
    d = tmp_path_factory.mktemp("fit")
    (d / "m.csv").write_text(_law_csv())
    with pytest.raises(SystemExit) as e:
        main(["law", "fit", str(d / "m.csv"), "--out", str(d / "fit.json")])
    assert e.value.code == 0
    return (d / "fit.json").read_bytes()


@pytest.fixture
def ws(tmp_path: Path, good_fit: bytes, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with valid inputs and a run directory with files already written."""
    (tmp_path / "good.yaml").write_bytes(_config())
    (tmp_path / "m.csv").write_text(_law_csv())
    (tmp_path / "mix.csv").write_text(_mixtures_csv())
    (tmp_path / "fit.json").write_bytes(good_fit)
    run = tmp_path / "runs" / "r"
    (run / "search").mkdir(parents=True)
    (run / "law").mkdir()
    (run / "config.yaml").write_bytes(_config(name="r"))
    (run / "search" / "trials.csv").write_text(_law_csv(seed=1))
    (run / "law" / "fit.json").write_bytes(good_fit)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "ok.yaml").write_text("task: ok_task\ndataset_path: json\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


DIR = b"<directory>"  # the culprit path is made a directory instead of a file
NUL = b"\x00\x01\x02\x03PK\x03\x04\xff\xfe"  # a binary file (a zip's first bytes)
LATIN1 = "name: café\n".encode("latin-1")
FIT = b"<fit>"  # a valid fit JSON, then edited by the case's ``edit``


class Case(NamedTuple):
    id: str
    culprit: str | None  # file (relative to the workspace) the case writes, or None
    content: bytes | None  # its bytes (DIR: a directory); None: leave it absent
    argv: list[str]
    needle: str  # must appear in the message (the culprit's name or key)
    edit: Callable[[dict], object] | None = None  # for FIT: change the parsed JSON


V = ["config", "validate"]
FIT_CMD = ["law", "fit", "m.csv", "--out", "out.json"]
PREDICT = ["law", "predict", "f.json", "mix.csv", "--out", "pred.csv"]

CASES = [
    # --- the experiment config -----------------------------------------------------------------
    Case("config-binary", "c.yaml", NUL, [*V, "c.yaml"], "c.yaml: is a binary file"),
    Case("config-latin1", "c.yaml", LATIN1, [*V, "c.yaml"], "c.yaml: is not UTF-8"),
    Case("config-truncated-utf8", "c.yaml", b"name: caf\xc3", [*V, "c.yaml"], "c.yaml: is not UTF-8"),
    Case("config-utf16", "c.yaml", "name: x\n".encode("utf-16"), [*V, "c.yaml"], "c.yaml: is a binary"),
    Case("config-empty", "c.yaml", b"", [*V, "c.yaml"], "c.yaml: is empty"),
    Case("config-blank", "c.yaml", b"\n   \n\n", [*V, "c.yaml"], "c.yaml: is empty"),
    Case("config-comments-only", "c.yaml", b"# nothing yet\n", [*V, "c.yaml"], "c.yaml: holds only comments"),
    Case("config-truncated", "c.yaml", _config()[:-40] + b"\n  x: [1,", [*V, "c.yaml"], "c.yaml: not valid YAML"),
    Case("config-tabs", "c.yaml", b"name: x\ncorpora:\n\trecipe: demo\n", [*V, "c.yaml"], "c.yaml: not valid YAML"),
    Case("config-list", "c.yaml", b"- name: x\n", [*V, "c.yaml"], "c.yaml: the top level must be a mapping"),
    Case("config-scalar", "c.yaml", b"42\n", [*V, "c.yaml"], "c.yaml: the top level must be a mapping"),
    Case("config-python-tag", "c.yaml", b"name: !!python/object/apply:os.system [echo]\n", [*V, "c.yaml"], "not valid YAML"),
    Case("config-self-alias", "c.yaml", b"name: &a [*a]\n", [*V, "c.yaml"], "c.yaml: name"),
    Case("config-deep-nesting", "c.yaml", b"name: " + b"[" * 20000 + b"]" * 20000, [*V, "c.yaml"], "c.yaml"),
    Case("config-dir", "c.yaml", DIR, [*V, "c.yaml"], "c.yaml: is a directory without config.yaml"),
    Case("config-missing", None, None, [*V, "nope.yaml"], "nope.yaml: no such config file"),
    Case("config-lr-negative", "c.yaml", _config(**{"train.lr": -1}), [*V, "c.yaml"], "train.lr"),
    Case("config-beta-one", "c.yaml", _config(**{"train.beta": 1.0}), [*V, "c.yaml"], "train.beta"),
    Case("config-unknown-key", "c.yaml", _config(**{"train.lr_typo": 1}), [*V, "c.yaml"], "train.lr_typo: unknown key"),
    Case("config-huge-count", "c.yaml", _config(**{"train.base_tokens": "9" * 400}), [*V, "c.yaml"], "train.base_tokens"),
    Case("run-config-latin1", "c.yaml", LATIN1, ["run", "c.yaml"], "c.yaml: is not UTF-8"),
    Case("status-config-binary", "c.yaml", NUL, ["status", "c.yaml"], "c.yaml: is a binary"),
    # a run directory's own config.yaml
    Case("rundir-config-binary", "runs/r/config.yaml", NUL, ["status", "runs/r"], "config.yaml: is a binary"),
    Case("rundir-config-dir", "runs/r/config.yaml", DIR, [*V, "runs/r"], "config.yaml: is a directory"),
    Case("rundir-config-empty", "runs/r/config.yaml", b"", ["search", "runs/r", "--show"], "config.yaml: is empty"),
    # --- --set overrides ----------------------------------------------------------------------
    Case("set-no-equals", None, None, [*V, "good.yaml", "--set", "train.lr"], "train.lr"),
    Case("set-empty-key", None, None, [*V, "good.yaml", "--set", "=3"], "empty key"),
    Case("set-out-of-range", None, None, [*V, "good.yaml", "--set", "train.lr=-1"], "train.lr"),
    Case("set-not-a-section", None, None, [*V, "good.yaml", "--set", "name.x=1"], "'name' is not a section"),
    Case("set-wrong-type", None, None, [*V, "good.yaml", "--set", "train.seq_len=abc"], "train.seq_len"),
    Case("set-nan", None, None, [*V, "good.yaml", "--set", "train.lr=.nan"], "train.lr"),
    # --- corpora recipes --------------------------------------------------------------------------
    Case("recipe-binary", "rec.yaml", NUL, [*V, "good.yaml", "--set", "corpora.recipe=rec.yaml"], "rec.yaml: is a binary"),
    Case("recipe-empty", "rec.yaml", b"", [*V, "good.yaml", "--set", "corpora.recipe=rec.yaml"], "rec.yaml: is empty"),
    Case("recipe-dir", "rec.yaml", DIR, [*V, "good.yaml", "--set", "corpora.recipe=rec.yaml"], "rec.yaml: is a directory"),
    Case("recipe-missing-file", None, None, [*V, "good.yaml", "--set", "corpora.recipe=no/rec.yaml"], "no/rec.yaml"),
    Case("recipe-unknown-name", None, None, [*V, "good.yaml", "--set", "corpora.recipe=nosuch"], "'nosuch'"),
    # --- rules a later stage checks, refused before anything runs -----------------------------------
    Case("rule-sampler-objectives", None, None, ["run", "good.yaml", "--set", "search.sampler=demix", "--set", "search.objectives=groups"], "search.sampler=demix"),
    Case("rule-merge-method", None, None, ["run", "good.yaml", "--set", "merge.method=nonsense"], "merge.method"),
    Case("rule-constraints", None, None, ["run", "good.yaml", "--set", "search.constraints.max={prose: 0.2}"], "search.constraints"),
    # --- lm-eval task YAML under evaluate.include_paths --------------------------------------------
    Case("include-missing", None, None, [*V, "good.yaml", "--set", "evaluate.include_paths=[nodir]"], "evaluate.include_paths[0]: nodir is missing"),
    Case("include-is-a-file", "t.yaml", b"task: t\n", [*V, "good.yaml", "--set", "evaluate.include_paths=[t.yaml]"], "evaluate.include_paths[0]: t.yaml is a file"),
    Case("task-yaml-binary", "tasks/t.yaml", NUL, [*V, "good.yaml", "--set", "evaluate.include_paths=[tasks]"], "t.yaml"),
    Case("task-yaml-latin1", "tasks/t.yaml", b"task: caf\xe9\n", [*V, "good.yaml", "--set", "evaluate.include_paths=[tasks]"], "t.yaml"),
    Case("task-yaml-truncated", "tasks/t.yaml", b"task: t\ndataset_path: [json\n", [*V, "good.yaml", "--set", "evaluate.include_paths=[tasks]"], "t.yaml"),
    Case("task-yaml-list", "tasks/t.yaml", b"- task: t\n", [*V, "good.yaml", "--set", "evaluate.include_paths=[tasks]"], "t.yaml"),
    # --- the law's measurement CSV ----------------------------------------------------------------
    Case("csv-binary", "m.csv", NUL, FIT_CMD, "m.csv"),
    Case("csv-latin1", "m.csv", b"mix:a,mix:b,loss:caf\xe9\n0.5,0.5,2\n", FIT_CMD, "m.csv"),
    Case("csv-empty", "m.csv", b"", FIT_CMD, "m.csv"),
    Case("csv-header-only", "m.csv", b"mix:a,mix:b,loss:a\n", FIT_CMD, "m.csv: no data rows"),
    Case("csv-truncated-row", "m.csv", _law_csv().encode()[:-30], FIT_CMD, "m.csv: row"),
    Case("csv-extra-cells", "m.csv", _law_csv().encode() + b"0.1,0.2,0.7,1,2,3,4\n", FIT_CMD, "more cells"),
    Case("csv-nan", "m.csv", b"mix:a,mix:b,loss:a\nnan,0.5,2\n0.2,0.8,2\n", FIT_CMD, "m.csv: row 1, column 'mix:a'"),
    Case("csv-inf-loss", "m.csv", b"mix:a,mix:b,loss:a\n0.5,0.5,inf\n0.2,0.8,2\n", FIT_CMD, "not a finite number"),
    Case("csv-negative", "m.csv", b"mix:a,mix:b,loss:a\n-0.5,1.5,2\n0.2,0.8,2\n", FIT_CMD, "negative proportion"),
    Case("csv-sums-off", "m.csv", b"mix:a,mix:b,loss:a\n0.5,0.7,2\n0.2,0.8,2\n", FIT_CMD, "m.csv"),
    Case("csv-no-mix-columns", "m.csv", b"x,loss:a\n1,2\n", FIT_CMD, "m.csv: missing columns"),
    Case("csv-is-a-dir", "m.csv", DIR, FIT_CMD, "m.csv"),
    Case("out-is-a-dir", "out.json", DIR, FIT_CMD, "out.json"),
    # a run's trials table
    Case("trials-binary", "runs/r/search/trials.csv", NUL, ["law", "fit", "runs/r"], "trials.csv"),
    Case("trials-latin1", "runs/r/search/trials.csv", b"mix:a,loss:\xe9\n1,2\n", ["law", "fit", "runs/r"], "trials.csv"),
    Case("trials-empty", "runs/r/search/trials.csv", b"", ["law", "fit", "runs/r"], "trials.csv"),
    Case("trials-is-a-dir", "runs/r/search/trials.csv", DIR, ["law", "fit", "runs/r"], "trials.csv"),
    # --- the fit JSON -----------------------------------------------------------------------------
    Case("fit-binary", "f.json", NUL, PREDICT, "f.json"),
    Case("fit-latin1", "f.json", b'{"law": "caf\xe9"}', PREDICT, "f.json"),
    Case("fit-empty", "f.json", b"", PREDICT, "f.json"),
    Case("fit-truncated", "f.json", FIT, PREDICT, "f.json", edit=lambda d: json.dumps(d)[:-20]),
    Case("fit-list", "f.json", b"[1, 2]", PREDICT, "f.json"),
    Case("fit-missing-keys", "f.json", b"{}", PREDICT, "f.json"),
    Case("fit-wrong-types", "f.json", FIT, PREDICT, "f.json", edit=lambda d: {**d, "domains": 3}),
    Case("fit-nan-parameter", "f.json", FIT, PREDICT, "f.json", edit=lambda d: _nan_first_number(d)),
    Case("fit-dir-without-fit", "f.json", DIR, PREDICT, "fit.json"),
    Case("predict-mixtures-binary", "mix.csv", NUL, ["law", "predict", "fit.json", "mix.csv", "--out", "p.csv"], "mix.csv"),
    Case("predict-mixtures-is-a-dir", "mix.csv", DIR, ["law", "predict", "fit.json", "mix.csv", "--out", "p.csv"], "mix.csv: is a directory"),
    Case("optimize-fit-binary", "f.json", NUL, ["law", "optimize", "f.json"], "f.json"),
    Case("optimize-rundir-fit-empty", "runs/r/law/fit.json", b"", ["law", "optimize", "runs/r"], "fit.json"),
    # --- the --loss-weights file --------------------------------------------------------------------
    Case("weights-binary", "w.json", NUL, [*FIT_CMD, "--loss-weights", "w.json"], "w.json"),
    Case("weights-not-json", "w.json", b"a=1,b=2", [*FIT_CMD, "--loss-weights", "w.json"], "w.json"),
    Case("weights-list", "w.json", b"[1, 2, 3]", [*FIT_CMD, "--loss-weights", "w.json"], "w.json"),
    Case("weights-negative", "w.json", b'{"a": -1, "b": 1}', [*FIT_CMD, "--loss-weights", "w.json"], "w.json"),
    Case("weights-string", "w.json", b'{"a": "heavy"}', [*FIT_CMD, "--loss-weights", "w.json"], "w.json"),
    Case("weights-nan", "w.json", b'{"a": NaN, "b": 1}', [*FIT_CMD, "--loss-weights", "w.json"], "w.json"),
    Case("weights-all-zero", "w.json", b'{"a": 0, "b": 0}', [*FIT_CMD, "--loss-weights", "w.json"], "w.json"),
    Case("weights-unknown-domain", "w.json", b'{"zz": 1}', [*FIT_CMD, "--loss-weights", "w.json"], "w.json"),
    Case("weights-is-a-dir", "w.json", DIR, [*FIT_CMD, "--loss-weights", "w.json"], "w.json"),
    Case("weights-missing", None, None, [*FIT_CMD, "--loss-weights", "w.json"], "w.json"),
]  # fmt: skip


def _nan_first_number(doc: object) -> object:
    """The fit with its first numeric parameter replaced by NaN (json.dumps writes ``NaN``)."""
    done = False

    def walk(x: object) -> object:
        nonlocal done
        if isinstance(x, dict):
            return {k: (v if k == "provenance" else walk(v)) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, float) and not done:
            done = True
            return float("nan")
        return x

    return walk(doc)


def _write(ws: Path, case: Case) -> None:
    if case.culprit is None or case.content is None:
        return
    path = ws / case.culprit
    if path.is_dir():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if case.content == DIR:
        path.unlink(missing_ok=True)
        path.mkdir()
    elif case.content == FIT:
        assert case.edit is not None
        edited = case.edit(json.loads((ws / "fit.json").read_text()))
        path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    else:
        path.write_bytes(case.content)


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_exits_2_naming_the_culprit(
    case: Case, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(ws, case)
    before = _snapshot(ws)
    with pytest.raises(SystemExit) as e:
        main(case.argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "Traceback" not in err
    assert case.needle in err, err
    assert err.startswith("error: ") and err.count("error: ") == 1, err
    assert _snapshot(ws) == before  # nothing written, nothing changed


# --- files handed to `demix evaluate --checkpoint`: the checkpoint, its weights, its tokenizer ------
EVAL = ["evaluate", "runs/r", "--checkpoint", "ckpt", "--role", "search"]
GONE = b"<absent>"  # the culprit is removed


def _truncated(ws: Path) -> bytes:
    return (ws / "ckpt" / "model.safetensors").read_bytes()[:1000]


CKPT_CASES = [
    Case("ckpt-empty-dir", "ckpt", DIR, EVAL, "ckpt: not a Hugging Face checkpoint (no config.json)"),
    Case("ckpt-is-a-file", "ckpt", b"weights", EVAL, "ckpt"),
    Case("ckpt-config-not-json", "ckpt/config.json", b"{nope", EVAL, "config.json"),
    Case("ckpt-config-binary", "ckpt/config.json", NUL, EVAL, "ckpt"),
    Case("ckpt-no-safetensors", "ckpt/model.safetensors", GONE, EVAL, "model.safetensors"),
    Case("safetensors-truncated", "ckpt/model.safetensors", FIT, EVAL, "model.safetensors: not a readable safetensors file", edit=_truncated),  # type: ignore[arg-type]
    Case("safetensors-not-safetensors", "ckpt/model.safetensors", b"hello world\n" * 10, EVAL, "model.safetensors: not a readable"),
    Case("safetensors-zero-bytes", "ckpt/model.safetensors", b"", EVAL, "model.safetensors: not a readable"),
    Case("tokenizer-not-json", "ckpt/tokenizer.json", b"{nope", EVAL, "ckpt: cannot load a tokenizer"),
    Case("tokenizer-binary", "ckpt/tokenizer.json", NUL * 300, EVAL, "ckpt: cannot load a tokenizer"),
    Case("task-yaml-not-utf8-in-run", "runs/r/tasks/extra.yaml", b"task: caf\xe9\n", [*EVAL, "--set", "evaluate.include_paths=[runs/r/tasks]"], "extra.yaml"),
    Case("task-yaml-scalar", "tasks/t.yaml", b"just a string\n", [*EVAL, "--set", "evaluate.include_paths=[tasks]"], "t.yaml"),
]  # fmt: skip


@pytest.fixture(scope="module")
def ckpt_template(trained_run, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """A prepared run (its tasks built by one good evaluation) and a good checkpoint beside it."""
    root = tmp_path_factory.mktemp("ckpt-ws")
    run = root / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_bytes(_config(name="r"))
    shutil.copytree(trained_run.root / "data", run / "data")
    shutil.copytree(trained_run.base, root / "ckpt")
    (root / "tasks").mkdir()
    cwd = Path.cwd()
    os.chdir(root)
    try:
        with pytest.raises(SystemExit) as e:
            main([*EVAL, "--out", "ok.json"])
    finally:
        os.chdir(cwd)
    assert e.value.code == 0
    return root


@pytest.mark.parametrize("case", CKPT_CASES, ids=[c.id for c in CKPT_CASES])
def test_hostile_checkpoint_exits_2_naming_the_culprit(
    case: Case, ckpt_template: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Cases share one workspace (a copied run would rebuild its tasks, which name the run's path) and
    # put the checkpoint and task folders back afterwards.
    ws = ckpt_template
    monkeypatch.chdir(ws)
    shutil.copytree(ws / "ckpt", ws.parent / "ckpt-good", dirs_exist_ok=True)
    try:
        if case.content == GONE:
            (ws / str(case.culprit)).unlink()
        elif case.content == FIT:
            assert case.edit is not None
            (ws / str(case.culprit)).write_bytes(case.edit(ws))  # type: ignore[arg-type]
        else:
            _write(ws, case)
        capsys.readouterr()
        before = _snapshot(ws)
        with pytest.raises(SystemExit) as e:
            main(case.argv)
        err = capsys.readouterr().err
        assert _snapshot(ws) == before
    finally:
        for p in (ws / "ckpt", *(ws / "tasks").glob("*"), ws / "runs" / "r" / "tasks" / "extra.yaml"):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        shutil.copytree(ws.parent / "ckpt-good", ws / "ckpt")
    assert e.value.code == 2, err
    assert "Traceback" not in err
    assert case.needle in err, err
    assert err.startswith("error: ") and err.count("error: ") == 1, err
