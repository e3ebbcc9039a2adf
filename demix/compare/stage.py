"""``demix compare``: every method's answer on the run's candidates, each checked by training.

Order: the scale first (the report's: the search's frozen baselines on the report tasks; without
them the base model and the prior- and uniform-mixture check models), then each method's answer (:mod:`demix.compare.methods`, :mod:`demix.compare.swarm`), then one
check model per answer and seed, trained from the base on the same budget and scored on the report
tasks (:mod:`demix.compare.check`). Answers equal to one another share their check model (the same
id). Writes ``compare/compare.json``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from demix.compare import check
from demix.compare.lawfit import fit_law, law_answer
from demix.compare.methods import Answer, demix_answer, doremi_answer, fixed_answers
from demix.compare.models import Models, Trained, log
from demix.compare.swarm import Swarm, build_swarm, regmix_answer, regmix_model
from demix.config import ExperimentConfig
from demix.mixture import as_dict
from demix.run import RunDir
from demix.util.hashing import hash_json
from demix.util.io import read_json, write_json_atomic
from demix.util.provenance import provenance

SCHEMA = "demix.compare/v1"


class _Context:
    """What the methods share: domains, prior, budgets, the models and the scale's anchors."""

    def __init__(self, cfg: ExperimentConfig, run: RunDir, progress: bool) -> None:
        from demix.data import Manifest
        from demix.train.prior import prior_counts

        manifest = Manifest.load(run)
        self.cfg, self.run = cfg, run
        self.domains = manifest.names
        self.counts = prior_counts(cfg, run, manifest)
        self.prior = self.counts / self.counts.sum()
        self.tokens = int(cfg.compare.check.tokens or cfg.train.reference_budget)
        self.models = Models(cfg, run, progress=progress)
        self.checks: dict[str, list[Trained]] = {}
        self.base, _ = self.models.score(run.base, "base")
        self.anchors, self.scale = self._anchors()
        self._swarm: Swarm | None = None

    def _anchors(self) -> tuple[dict[str, Any], str]:
        """The scale's fixed ends: the report's own (the search's frozen baselines scored on the
        report tasks, ``export/recommendation.json``), so every method is judged on the scale the
        search optimised and the report states; else the base and the prior- and uniform-mixture
        check models."""
        frozen = _frozen_baselines(self.run, set(self.base.metrics))
        if frozen:
            return frozen, (
                "the report's objective over the report tasks: per task 0 at the worst, 1 at the best of "
                f"the search's frozen baselines ({', '.join(frozen)}: merged proxies, as the report scores them)"
            )
        uniform = np.full(len(self.domains), 1.0 / len(self.domains))
        anchors: dict[str, Any] = {"base": self.base}
        for name, r in (("prior", self.prior), ("uniform", uniform)):
            anchors[name] = self.check_models(r)[0].result
        return anchors, (
            "objective over the report tasks; per task 0 at the worst, 1 at the best of the anchors "
            "(base model, prior- and uniform-mixture check models: the run has no report-task scores of "
            "the search's baselines)"
        )

    def check_models(self, r: np.ndarray) -> list[Trained]:
        """The check models of mixture r (one per seed), trained once per distinct mixture."""
        key = hash_json(np.round(r, 12).tolist())
        if key not in self.checks:
            seeds = range(self.cfg.compare.check.seeds)
            self.checks[key] = [self.models.train("check", r, self.tokens, s) for s in seeds]
        return self.checks[key]

    def score(self, t: Trained) -> float:
        return check.score(t.result, self.anchors)

    @property
    def swarm(self) -> Swarm:
        if self._swarm is None:
            self._swarm = build_swarm(
                self.cfg, self.models, self.domains, self.prior, self.counts, self.score
            )
        return self._swarm


def _frozen_baselines(run: RunDir, tasks: set[str]) -> dict[str, dict[str, float]] | None:
    """The search's baselines' report-task values (name -> task -> value) from the recommendation,
    when they cover every task the check counts; None otherwise."""
    from demix.search.topk import NOT_BASELINES  # imported here: the search is not needed to start up

    path = run.export / "recommendation.json"
    if not path.is_file():
        return None
    report = read_json(path).get("search_report") or {}
    out = {
        name: {t: float(v) for t, v in (row.get("metrics") or {}).items()}
        for name, row in report.items()
        if name not in NOT_BASELINES
    }
    return out if len(out) >= 2 and all(tasks <= set(v) for v in out.values()) else None


def _answers(ctx: _Context, methods: list[str]) -> tuple[dict[str, Answer], dict[str, Any]]:
    """Every method's answer, timed; and the predictors (fitted regressors) for the order check."""
    cfg, answers, predictors = ctx.cfg, {}, {}
    for m in methods:
        t0 = time.perf_counter()
        log(ctx.models.progress, f"method {m}")
        if m == "demix":
            a = demix_answer(cfg, ctx.run, ctx.domains)
        elif m == "regmix":
            predictors["regmix"] = gbm = regmix_model(ctx.swarm, cfg.compare.check.seed)
            a = regmix_answer(cfg, ctx.swarm, ctx.domains, ctx.prior, ctx.counts, gbm)
        elif m == "law":
            bpb = {t.name: t.domain for t in ctx.models.suite if t.kind == "bpb" and t.domain is not None}
            weights = check.loss_weights(ctx.base, ctx.anchors, ctx.domains, bpb)
            law, info = fit_law(cfg, ctx.swarm, ctx.domains, ctx.tokens, weights)
            predictors["law"] = (law, weights[0])
            a = law_answer(cfg, ctx.swarm, law, info, ctx.domains, ctx.counts)
        elif m == "doremi":
            d = cfg.compare.doremi
            ref = ctx.models.train("check", ctx.prior, int(d.tokens or ctx.tokens))
            a = doremi_answer(cfg, ctx.run, ctx.models, ctx.domains, ref)
        else:
            a = fixed_answers(m, cfg, ctx.domains, ctx.prior)
        a.extra["answer_seconds"] = round(time.perf_counter() - t0, 3)
        answers[m] = a
    return answers, predictors


def _predictions(predictors: dict[str, Any], answers: dict[str, Answer]) -> dict[str, dict[str, float]]:
    """Predictor -> method -> predicted quality of that method's mixture (higher is better)."""
    R = np.stack([a.r for a in answers.values()])
    out: dict[str, dict[str, float]] = {}
    if "regmix" in predictors:
        out["regmix"] = dict(zip(answers, map(float, predictors["regmix"].predict(R)), strict=True))
    if "law" in predictors:
        law, s = predictors["law"]
        loss = np.asarray(law.predict(R), dtype=np.float64) @ s  # the check's weighting
        out["law"] = dict(zip(answers, map(float, -loss), strict=True))  # lower loss = better
    return out


def _rows(ctx: _Context, answers: dict[str, Answer]) -> dict[str, dict[str, Any]]:
    cc = ctx.cfg.compare.check
    rows: dict[str, dict[str, Any]] = {}
    for i, (m, a) in enumerate(answers.items()):
        trained = ctx.check_models(a.r)
        sc = check.interval([t.result for t in trained], ctx.anchors, cc.bootstrap, cc.seed + i)
        rows[m] = {
            "r": as_dict(a.r, ctx.domains),
            "note": a.note,
            "cost": a.cost.to_json(),
            "predicted": a.predicted,
            "trained": sc,
            "check_models": [t.id for t in trained],
            "check_bpb": [dict(t.result.bpb) for t in trained],
            **a.extra,
        }
    rk = check.ranks({m: rows[m]["trained"]["value"] for m in rows})
    for m in rows:
        rows[m]["rank"] = rk[m]
    return rows


def _lead(ctx: _Context, answers: dict[str, Answer], rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The winner's lead over every other method, with paired intervals (one document resample for all)."""
    cc = ctx.cfg.compare.check
    values = {m: rows[m]["trained"]["value"] for m in rows}
    if cc.bootstrap <= 0:
        return check.lead({m: np.zeros(0) for m in rows}, values)
    results = {m: [t.result for t in ctx.check_models(a.r)] for m, a in answers.items()}
    return check.lead(check.paired_draws(results, ctx.anchors, cc.bootstrap, cc.seed), values)


def compare(cfg: ExperimentConfig, run: RunDir, *, progress: bool = True) -> dict[str, Any]:
    """Run ``compare.methods`` on the run's candidates, check each answer by training, write
    ``compare/compare.json``.

    Returns:
        The document: ``methods`` (method -> r, cost, trained score with interval, rank),
        ``order`` (per predictor: does its order of the answers match the trained order),
        ``swarm``, ``check``, ``scale``, ``provenance``.

    Raises:
        StageError: the base (or, for demix, the recommendation) is missing.
        ConfigError: a hand mixture names an unknown domain.
    """
    t0 = time.perf_counter()
    ctx = _Context(cfg, run, progress)
    answers, predictors = _answers(ctx, cfg.compare.method_names)
    rows = _rows(ctx, answers)
    lead = _lead(ctx, answers, rows)
    trained = {m: r["trained"]["value"] for m, r in rows.items()}
    order = {p: check.order_agreement(v, trained) for p, v in _predictions(predictors, answers).items()}
    doc = {
        "schema": SCHEMA,
        "domains": ctx.domains,
        "methods": rows,
        "order": order,
        "best": min(rows, key=lambda m: rows[m]["rank"]),
        "lead": lead,
        "verdict": check.verdict(rows, lead),
        "check": {
            "tokens": ctx.tokens,
            "seeds": cfg.compare.check.seeds,
            "bootstrap": cfg.compare.check.bootstrap,
        },
        "scale": ctx.scale,
        "anchors": list(ctx.anchors),
        "cost_note": "the base model is left out of every cost: every method's models start from it",
        "swarm": ctx._swarm.to_json(ctx.domains) if ctx._swarm is not None else None,
        "seconds": round(time.perf_counter() - t0, 3),
        "provenance": provenance(
            {"compare": hash_json(cfg.compare.model_dump(mode="json")), "evaluate": ctx.models.eval_key}
        ),
    }
    write_json_atomic(run.root / "compare" / "compare.json", doc)
    return doc
