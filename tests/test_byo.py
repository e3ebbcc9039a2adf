"""Bring your own components end to end: README's commands on tiny random models of six
architectures saved by transformers, nothing trained by demix.

For each architecture (one sharded, one in bf16): ``demix run configs/byo.yaml`` finishes every stage
it needs; the merge is the fp64 weighted average; the live proxy and the exported one score the
same; the law, recommendation, export and report are written; and the exported ratios are the data
ratios β·e_G + (1-β)·w the components stand for.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from demix.pipeline.stages import STAGES
from demix.run import RunDir
from tests.byo_tree import CANDIDATES, make_byo_tree
from tests.conftest import REPO
from tests.test_merge_byo import assert_fp64_average

CASES = [
    ("qwen3", torch.bfloat16, None),  # DeMix's released components are Qwen3, in bf16
    ("gpt2", torch.float32, None),
    ("gpt_neox", torch.float32, None),
    ("llama", torch.float32, "40KB"),  # sharded: model.safetensors.index.json
    ("phi3", torch.float32, None),
    ("opt", torch.float32, None),
]
# Every README command runs for the first case, `demix run` for the others; all with a smaller search
# and held-out sample than the example's (the search's own tests cover its sampler), so six
# architectures stay cheap.
SMALL = (
    *("--set", "search.sampler=random", "--set", "search.n_trials=4"),
    *("--set", "evaluate.builtin.bpb_docs=16", "--set", "export.bootstrap=10"),
)


def readme_commands() -> list[list[str]]:
    """The shell commands of README's "Bring your own components" section (comments dropped)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Bring your own components", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "README: the section has no bash block"
    lines = [ln.split("#", 1)[0].strip() for ln in block.group(1).splitlines()]
    return [shlex.split(ln) for ln in lines if ln]


def _demix(root: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    assert argv[0] == "demix", argv
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "demix", *argv[1:]],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _run_all(root: Path, verbatim: bool) -> None:
    commands = [c for c in readme_commands() if verbatim or c[1] == "run"]
    commands = [[*c, *SMALL] if c[1] == "run" else c for c in commands]
    for argv in commands:
        r = _demix(root, argv)
        assert r.returncode == 0, f"{' '.join(argv)}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr, r.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "dtype", "shard"), CASES, ids=[c[0] for c in CASES])
def test_bring_your_own_components_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arch: str, dtype: torch.dtype, shard: str | None
) -> None:
    root = make_byo_tree(tmp_path, arch, dtype=dtype, shard=shard)
    _run_all(root, verbatim=arch == CASES[0][0])
    run = RunDir(root / "runs" / "byo")
    assert not (run.root / "models").exists(), "demix trained something"
    for f in ("law/check.json", "law/fit.json", "export/recommended_mixture.json", "report/report.html"):
        assert (run.root / f).is_file(), f

    monkeypatch.chdir(root)  # the config's paths are relative to where demix runs, as in the README
    from demix.config import load_config

    cfg = load_config("configs/byo.yaml", list(SMALL[1::2]))
    status = _status(cfg, run)
    assert status["train-base"] == status["train-components"] == "not needed"
    optional = {st.name for st in STAGES if st.optional}  # validate, compare: only when asked for
    assert all(v in ("done", "not needed") for k, v in status.items() if k not in optional), status
    _merge_and_scores_agree(cfg, run, tmp_path)
    _ratios_follow_beta(cfg, run)
    rec = json.loads((run.root / "export" / "recommendation.json").read_text())
    assert "base_model" in rec["search_report"]  # components.base: the report's row for where they started


def _status(cfg, run: RunDir) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from demix.pipeline import status

    return {s.name: s.state for s in status(cfg, run)}


def _merge_and_scores_agree(cfg, run: RunDir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from demix.evaluate.command import evaluate_model
    from demix.merge import engine_for_run

    engine = engine_for_run(
        cfg.model_copy(update={"merge": cfg.merge.model_copy(update={"dtype": "float32"})}), run
    )
    w = [0.2, 0.3, 0.5]
    engine.merge(np.asarray(w))
    assert_fp64_average(engine, [Path(cfg.merge.components[n]) for n in CANDIDATES], w)
    proxy = engine.save(tmp_path / "proxy", tokenizer_dir=run.tokenizer)
    weights = ",".join(f"{n}={x}" for n, x in zip(CANDIDATES, w, strict=True))
    live, _, _ = evaluate_model(cfg, run, weights=weights)
    exported, _, _ = evaluate_model(cfg, run, checkpoint=proxy)
    a, b = live.to_json()["metrics"], exported.to_json()["metrics"]
    assert a and a == b


def _ratios_follow_beta(cfg, run: RunDir) -> None:  # type: ignore[no-untyped-def]
    mixture = json.loads((run.root / "export" / "recommended_mixture.json").read_text())
    w = np.array([mixture["merge_weights"][n] for n in CANDIDATES])
    r = np.array([mixture["ratios"][n] for n in CANDIDATES])
    beta = cfg.components.beta
    assert mixture["beta"] == beta and mixture["general"] == "web"
    np.testing.assert_allclose(r, beta * np.eye(3)[0] + (1 - beta) * w, atol=1e-5)  # ratios: 6 digits
    assert r[0] >= beta - 1e-6  # at least β of the general data
    lengths = mixture["tokens_per_document"]  # from the held-out documents: no training data here
    assert set(lengths) == set(CANDIDATES) and all(v is not None and v > 0 for v in lengths.values())


@pytest.mark.slow
def test_without_held_out_text_the_law_says_why_it_is_skipped(tmp_path: Path) -> None:
    root = make_byo_tree(tmp_path, "gpt2")
    no_heldout = [x for n in CANDIDATES for x in ("--set", f"components.candidates.{n}.heldout=null")]
    r = _demix(root, ["demix", "run", "configs/byo.yaml", *SMALL, *no_heldout])
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "no per-domain losses to fit the law to (give components.candidates.<name>.heldout" in out
    run = root / "runs" / "byo"
    assert not (run / "data").exists() and not (run / "law").exists()
    assert (run / "export" / "recommended_mixture.json").is_file()
    status = _demix(root, ["demix", "status", "configs/byo.yaml", *SMALL, *no_heldout])
    assert status.returncode == 0 and "not needed" in status.stdout, status.stdout
