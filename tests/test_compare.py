"""``demix compare`` on the tiny run: every method, small budgets, each answer checked by training;
the cost accounting, the order check, ``export --method`` and the report section."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from demix.config import dump_config
from demix.run import RunDir
from tests.conftest import copy_run, tiny_config

SWARM = 7  # the law's minimum over 5 domains (K + 2 mixtures)
# 1024 tokens a step: swarm models 2 steps, check models, DoReMi's reference and proxy 4 steps each.
SMALL = (
    "train.eval_every=1000",
    "train.eval_tokens=2K",
    f"compare.swarm.count={SWARM}",
    "compare.swarm.tokens=2K",
    "compare.check.tokens=4K",
    "compare.check.bootstrap=200",
    "compare.regmix.pool_size=2000",
    "compare.regmix.top_k=16",
    "compare.doremi.eta=0.5",
    'compare.mixtures={"team": {"prose": 0.6, "code": 0.2, "math": 0.2}}',
    "evaluate.builtin.bpb_docs=6",
    "evaluate.builtin.accuracy_docs=20",
    "law.random_t=4",
    "law.cv_starts=20",
)
DEMIX_R = {"prose": 0.55, "code": 0.15, "math": 0.15, "comments": 0.05, "tables": 0.10}


def _cli(args: list[str]) -> None:
    from demix.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0


def _recommendation(run: RunDir, cfg: Any) -> None:
    """A stand-in for the search's export/recommendation.json (the search is tested elsewhere)."""
    from demix.mixture import ratios_to_weights
    from demix.recommend.build import Recommendation
    from demix.recommend.choices import Candidate
    from demix.util.io import write_json_atomic

    domains = list(DEMIX_R)
    r = np.array([DEMIX_R[d] for d in domains])
    w = ratios_to_weights(r, domains, cfg.general, cfg.train.beta)
    cand = Candidate("surrogate_topk", r, w, {"surrogate_objective": 0.7})
    rec = Recommendation(domains, cfg.general, cfg.train.beta, "surrogate_topk", {"surrogate_topk": cand})
    write_json_atomic(run.export / "recommendation.json", rec.to_json())


@pytest.fixture(scope="module")
def compared(
    trained_run: RunDir, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunDir, dict[str, Any], float]:
    from demix.compare import compare

    run = copy_run(trained_run, tmp_path_factory.mktemp("cmp") / "run", parts=("data", "models"))
    cfg = tiny_config(run.root, *SMALL)
    run.config.write_text(dump_config(cfg))
    _recommendation(run, cfg)
    t0 = time.perf_counter()
    doc = compare(cfg, run, progress=False)
    return run, doc, time.perf_counter() - t0


def test_every_method_answers_and_is_checked(compared: tuple[RunDir, dict[str, Any], float]) -> None:
    run, doc, seconds = compared
    methods = doc["methods"]
    assert list(methods) == ["demix", "prior", "uniform", "regmix", "law", "doremi", "team"]
    on_disk = json.loads((run.root / "compare" / "compare.json").read_text())
    assert on_disk["methods"].keys() == methods.keys() and "provenance" in on_disk
    for m, row in methods.items():
        r = np.array(list(row["r"].values()))
        assert r.sum() == pytest.approx(1.0) and (r >= 0).all(), m
        t = row["trained"]
        assert np.isfinite(t["value"]) and t["low"] <= t["value"] <= t["high"], m
        assert len(row["check_models"]) == 1
        assert (run.reference(row["check_models"][0]) / "model.safetensors").is_file()
    assert methods["demix"]["r"] == pytest.approx(DEMIX_R)
    assert methods["team"]["r"] == pytest.approx(
        {"prose": 0.6, "code": 0.2, "math": 0.2, "comments": 0, "tables": 0}
    )
    assert methods["uniform"]["r"] == pytest.approx({d: 0.2 for d in DEMIX_R})
    # ranks: 1..7 ordered like the trained scores, ties sharing their mean rank (tiny evaluations
    # give scores in steps of 1/12: two mixtures can tie)
    ranks = {m: row["rank"] for m, row in methods.items()}
    score = {m: row["trained"]["value"] for m, row in methods.items()}
    assert sum(ranks.values()) == pytest.approx(sum(range(1, 8)))
    for a in methods:
        for b in methods:
            if score[a] > score[b]:
                assert ranks[a] < ranks[b], (a, b, score, ranks)
            elif score[a] == score[b]:
                assert ranks[a] == ranks[b], (a, b, score, ranks)
    best = max(methods, key=lambda m: methods[m]["trained"]["value"])
    assert doc["best"] == best and ranks[best] == 1
    # the prior's check model is DoReMi's reference: the same trained model
    assert methods["doremi"]["reference_dir"] == str(run.reference(methods["prior"]["check_models"][0]))
    rows = (Path(methods["doremi"]["proxy_dir"]) / "domain_weights.jsonl").read_text().splitlines()
    assert len(rows) == 4  # a weight update per step
    for p in ("regmix", "law"):
        o = doc["order"][p]
        assert o["n"] == 7 and isinstance(o["same_order"], bool) and o["predicted_best"] in methods
        # 7 swarm rows are below LightGBM's smallest leaf (RegMix's settings): a constant prediction
        # has no order (NaN), never a made-up one
        assert (-1 <= o["spearman"] <= 1) or (p == "regmix" and len(set(o["predicted"].values())) == 1)
    # the law optimises and ranks by what the check scores: its bits-per-byte tasks' weights
    fit = methods["law"]["law_fit"]
    # (the tiny config's objective is accuracy only: no bits-per-byte task, so equal weights)
    assert fit["loss_weights"] == pytest.approx(dict.fromkeys(doc["domains"], 0.2))
    assert "no bits-per-byte task" in fit["loss_weights_source"]
    assert "losses weighted by" in methods["law"]["note"]
    assert methods["regmix"]["regressor_constant"] == (
        len(set(doc["order"]["regmix"]["predicted"].values())) == 1
    )
    print(f"compare on the tiny run: {seconds:.1f} s")


def test_cost_accounting(compared: tuple[RunDir, dict[str, Any], float]) -> None:
    from demix.train import read_summary

    run, doc, _ = compared
    methods = doc["methods"]
    for free in ("prior", "uniform", "team"):
        assert methods[free]["cost"]["tokens"] == 0 and methods[free]["cost"]["models"] == 0
    params = read_summary(run.base)["params"]  # type: ignore[index]
    comps = [read_summary(run.component(d)) for d in DEMIX_R]
    demix = methods["demix"]["cost"]
    assert demix["tokens"] == sum(int(c["tokens"]) for c in comps)  # type: ignore[index]
    assert demix["flops"] == pytest.approx(6 * params * demix["tokens"])
    assert demix["models"] == 5
    # DoReMi: reference + proxy, 4 steps of 1024 tokens each
    assert methods["doremi"]["cost"]["models"] == 2 and methods["doremi"]["cost"]["tokens"] == 2 * 4096
    # RegMix and the law each pay for the whole swarm they share
    swarm = doc["swarm"]
    assert swarm["n"] == SWARM and methods["regmix"]["cost"] == methods["law"]["cost"] == swarm["cost"]
    assert swarm["cost"]["tokens"] == SWARM * 2048
    assert swarm["cost"]["flops"] == pytest.approx(6 * params * SWARM * 2048)
    for m in ("demix", "regmix", "doremi"):
        assert methods[m]["cost"]["seconds"] > 0


def test_cli_resumes_and_prints_the_table(
    compared: tuple[RunDir, dict[str, Any], float], capsys: pytest.CaptureFixture[str]
) -> None:
    """`demix compare RUN` a second time retrains nothing (same models, same scores) and prints the table."""
    run, doc, _ = compared
    ref = run.reference(doc["methods"]["uniform"]["check_models"][0]) / "model.safetensors"
    mtime = ref.stat().st_mtime_ns
    _cli(["compare", str(run.root)])
    out = capsys.readouterr().out
    assert ref.stat().st_mtime_ns == mtime
    again = json.loads((run.root / "compare" / "compare.json").read_text())
    assert {m: r["trained"]["value"] for m, r in again["methods"].items()} == pytest.approx(
        {m: r["trained"]["value"] for m, r in doc["methods"].items()}
    )
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("method"))
    shown = [line.split()[0] for line in lines[head + 1 : head + 8]]
    assert shown == sorted(doc["methods"], key=lambda m: doc["methods"][m]["rank"])
    assert doc["verdict"].startswith(doc["best"]) and doc["verdict"] in out
    print(out)


def test_export_method(
    compared: tuple[RunDir, dict[str, Any], float], capsys: pytest.CaptureFixture[str]
) -> None:
    from demix.errors import ConfigError
    from demix.export.stage import export

    run, doc, _ = compared
    _cli(["export", str(run.root), "--method", "regmix"])
    out_dir = run.export / "methods" / "regmix"
    written = json.loads((out_dir / "recommended_mixture.json").read_text())
    assert written["choice"] == "regmix"
    assert written["ratios"] == pytest.approx(doc["methods"]["regmix"]["r"], abs=1e-6)
    assert written["predicted"]["trained_score"] == pytest.approx(
        doc["methods"]["regmix"]["trained"]["value"]
    )
    for name in ("recommended_mixture.yaml", "recommended_mixture.csv", "recommended_mixture.md"):
        assert (out_dir / name).is_file(), name
    assert not (run.export / "recommended_mixture.json").exists()  # DeMix's own export is untouched
    cfg = tiny_config(run.root, *SMALL)
    paths = export(cfg, run, method="doremi", progress=False)
    assert all(p.parent == run.export / "methods" / "doremi" for p in paths)
    with pytest.raises(ConfigError, match="--method nope"):
        export(cfg, run, method="nope", progress=False)


def test_report_section(compared: tuple[RunDir, dict[str, Any], float]) -> None:
    from demix.report.compare import compare_sections
    from demix.report.render import render_markdown

    run, doc, _ = compared
    (sec,) = compare_sections(run.root)
    assert sec.title == "Methods compared"
    tables = [b for k, b in sec.blocks if k == "table"]
    assert len(tables) == 1 and len(tables[0][1]) == len(doc["methods"])
    stems = [stem for stem, png, _ in sec.figures if png.startswith(b"\x89PNG")]
    assert stems == ["compare_scores", "compare_lead", "compare_mixtures", "compare_doremi"]
    md = render_markdown("t", [sec], "meta")
    assert "## Methods compared" in md and doc["verdict"] in md
    assert (
        set(doc["lead"]["vs"]) == set(doc["methods"]) - {doc["best"]} and doc["lead"]["best"] == doc["best"]
    )
    assert compare_sections(run.root / "nowhere") == []


def test_compare_is_an_optional_stage_after_export() -> None:
    from demix.pipeline.stages import STAGE_NAMES, STAGES

    st = {s.name: s for s in STAGES}["compare"]
    assert st.optional and st.needs == ("export",)
    assert STAGE_NAMES.index("compare") == STAGE_NAMES.index("export") + 1


def test_law_on_a_double_diminishing_swarm_with_the_step_law_and_a_subset(
    trained_run: RunDir, tmp_path: Path
) -> None:
    """The Data Mixing Laws' pipeline as a method: the double-diminishing design, each member's
    held-out curve extrapolated to the check budget, the law fitted on the best-fitting subset."""
    from demix.compare import compare
    from demix.compare.designs import diminishing_proportions
    from demix.mixture.bounds import bounds_for

    run = copy_run(trained_run, tmp_path / "run", parts=("data", "models"))
    over = [
        s
        for s in SMALL
        if not s.startswith(("train.eval_every", "compare.swarm.count", "compare.swarm.tokens"))
    ]
    cfg = tiny_config(
        run.root, *over, "train.eval_every=1", "compare.swarm.count=8", "compare.swarm.tokens=4K",
        "compare.check.tokens=8K", "compare.swarm.sampler=double_diminishing", "compare.law.subset=7",
        'compare.methods=["law", "regmix"]',
    )  # fmt: skip
    # The report's scale: the search's baselines scored on the report tasks (here made up around
    # the base's values; only their spread matters) replace the check models as the scale's ends.
    from demix.compare.models import Models
    from demix.util.io import write_json_atomic

    base, _ = Models(cfg, run, progress=False).score(run.base, "base")
    spread = {"uniform": 0.9, "prior": 1.1, "only:code": 1.0}
    report = {n: {"metrics": {t: m.value * f for t, m in base.metrics.items()}} for n, f in spread.items()}
    write_json_atomic(run.export / "recommendation.json", {"search_report": {"recommended": {}, **report}})
    doc = compare(cfg, run, progress=False)
    assert doc["anchors"] == list(spread) and "frozen baselines (uniform, prior, only:code" in doc["scale"]
    domains = doc["domains"]
    props = diminishing_proportions(bounds_for(cfg, domains).hi, 1 / 16, 3)
    assert doc["swarm"]["sampler"] == "double_diminishing" and doc["swarm"]["n"] == 8
    for m in doc["swarm"]["members"]:
        r = [m["r"][d] for d in domains]
        assert abs(sum(r) - 1) < 1e-9 and all(np.isclose(p, v).any() for p, v in zip(props, r, strict=True))
    fit = doc["methods"]["law"]["law_fit"]
    assert "step law from 4,096 to 8,192 tokens" in fit["source"], fit
    assert fit["subset"]["size"] == 7 and len(fit["subset"]["left_out"]) == 1
    assert "7 of 8 swarm models" in doc["methods"]["law"]["note"]
    for m in ("law", "regmix"):
        assert np.isfinite(doc["methods"][m]["trained"]["value"])
    # without the report's scores the scale falls back to the base and the check models
    fallback = compare(
        cfg.model_copy(update={"compare": cfg.compare.model_copy(update={"methods": ("uniform",)})}),
        copy_run(run, tmp_path / "r2", parts=("data", "models")),
        progress=False,
    )
    assert fallback["anchors"] == ["base", "prior", "uniform"]
