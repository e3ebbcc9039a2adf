"""``demix recommend``: the recommended mixture of a finished search, three ways, side by side.

Reads ``search/trials.csv`` (and ``law/check.json`` / ``law/fit.json`` when the law stage ran), builds
the :mod:`demix.export.choices` candidates with bootstrap intervals over trials, picks the one
``export.choose`` names, and writes ``export/recommendation.json``. Recomputed only when its inputs
(trials, law files, config) change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from demix.config import ExperimentConfig
from demix.errors import StageError
from demix.mixture import as_dict, from_mapping, weights_to_ratios
from demix.recommend import law as lawview
from demix.recommend.choices import Candidate, best_index, bootstrap_interval, edge_warning, pareto_front
from demix.recommend.table import TrialsTable, load_trials
from demix.run import RunDir
from demix.util.hashing import hash_file, hash_json
from demix.util.io import read_json, write_json_atomic
from demix.util.provenance import provenance

BOOTSTRAP_POOL = 20_000  # bootstrap replicates rank a subsample of the pool this large (speed)


@dataclass
class Recommendation:
    """The side-by-side recommendation of one run.

    Attributes:
        domains: canonical order. general, beta: how w maps to r.
        choice: the candidate ``export.choose`` picked. candidates: name -> :class:`Candidate`.
        pareto: in multi-objective mode, the non-dominated measured trials (trial, objectives, r).
        warnings: the beta-edge warning and anything else the data team must know.
        n_trials: completed trials the recommendation used.
        search_report: ``search/recommendation.json``'s report-task scores vs the baselines, if any.
    """

    domains: list[str]
    general: str
    beta: float
    choice: str
    candidates: dict[str, Candidate]
    pareto: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_trials: int = 0
    search_report: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen(self) -> Candidate:
        return self.candidates[self.choice]

    def to_json(self) -> dict[str, Any]:
        return {
            "domains": self.domains,
            "general": self.general,
            "beta": self.beta,
            "choice": self.choice,
            "candidates": {k: c.to_json(self.domains) for k, c in self.candidates.items()},
            "pareto": self.pareto,
            "warnings": self.warnings,
            "n_trials": self.n_trials,
            "search_report": self.search_report,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Recommendation:
        domains = list(d["domains"])
        return cls(
            domains=domains,
            general=str(d["general"]),
            beta=float(d["beta"]),
            choice=str(d["choice"]),
            candidates={k: Candidate.from_json(c, domains) for k, c in d["candidates"].items()},
            pareto=list(d.get("pareto") or []),
            warnings=list(d.get("warnings") or []),
            n_trials=int(d.get("n_trials", 0)),
            search_report=dict(d.get("search_report") or {}),
        )


def _check_finished(cfg: ExperimentConfig, run: RunDir, table: TrialsTable) -> TrialsTable:
    done = table.complete()
    searched = int(np.sum(done.baseline == ""))
    want = cfg.search.n_trials
    if len(done) < 2:
        raise StageError(
            f"{run.trials_csv}: {len(done)} completed trials; run `demix search {run.root}` to finish the search"
        )
    if searched < want and cfg.search.timeout_s is None:
        raise StageError(
            f"{run.trials_csv}: the search is unfinished ({searched} of search.n_trials={want} trials); "
            f"run `demix search {run.root}` to finish it, or pass --set search.n_trials={searched} to use what is there"
        )
    return done


def _context(cfg: ExperimentConfig, run: RunDir, domains: list[str]) -> tuple[Any, np.ndarray, np.ndarray]:
    """The search's constraints, pool prior and token counts, built the way the search built them."""
    from demix.mixture.constraints import constraints_for
    from demix.search.context import domains_and_counts
    from demix.search.surrogate import pool_prior

    names, counts = domains_and_counts(cfg, run)
    if list(names) != list(domains):
        raise StageError(
            f"{run.trials_csv}: domains {domains} differ from the run's {names}; rerun the search"
        )
    return constraints_for(cfg, names, counts), pool_prior(counts, cfg.search.demix.prior_power), counts


def inputs_hash(cfg: ExperimentConfig, run: RunDir) -> dict[str, str]:
    """What the recommendation depends on: trials, law files, and the config it reads."""
    out = {"trials": hash_file(run.trials_csv)}
    if (run.search / "recommendation.json").is_file():
        out["search/recommendation.json"] = hash_file(run.search / "recommendation.json")
    for name in ("check.json", "fit.json"):
        p = run.law / name
        if p.is_file():
            out[f"law/{name}"] = hash_file(p)
    out["config"] = hash_json(
        {
            "export": cfg.export.model_dump(mode="json", include={"choose", "bootstrap", "edge_tolerance"}),
            "search": cfg.search.model_dump(
                mode="json", include={"demix", "constraints", "seed", "min_weight"}
            ),
            "beta": cfg.train.beta,
            "general": cfg.general,
        }
    )
    return out


def build_recommendation(
    cfg: ExperimentConfig, run: RunDir, table: TrialsTable, *, with_law: bool = True
) -> Recommendation:
    """The candidates, intervals, Pareto set and warnings from completed trials (no files written).

    Args:
        with_law: add the law optimum when the law stage ran (``law/check.json``).
    """
    from demix.search.surrogate import candidate_pool, fit, recommend_topk

    domains, general, beta = table.domains, cfg.general, cfg.train.beta
    constraints, prior, counts = _context(cfg, run, domains)
    law = lawview.load(cfg, run, counts) if with_law else None
    s, seed, B = cfg.search.demix, cfg.search.seed, cfg.export.bootstrap
    W, y = table.W, table.objective

    def ratios(w: np.ndarray) -> np.ndarray:
        return weights_to_ratios(w, domains, general, beta)

    pool = candidate_pool(prior, s, constraints, seed)
    w_top, info = recommend_topk(W, y, prior, s, constraints, seed, pool=pool)
    search_rec = run.search / "recommendation.json"
    searched = read_json(search_rec) if search_rec.is_file() else {}
    if isinstance(searched.get("w"), dict) and set(searched["w"]) == set(domains):
        # the search's own top-k mixture (fitted on full-precision weights, scored on the report tasks)
        w_top = from_mapping(searched["w"], domains)
        info["predicted"] = float(searched.get("predicted_objective", info["predicted"]))
    rng = np.random.default_rng(seed)
    # keep the pool's order: tree predictions tie often, and top-k breaks ties by position
    small = pool[np.sort(rng.choice(len(pool), size=min(len(pool), BOOTSTRAP_POOL), replace=False))]

    def topk_rep(idx: np.ndarray, b: int) -> np.ndarray | None:
        if len(np.unique(idx)) < 2:
            return None
        w, _ = recommend_topk(W[idx], y[idx], prior, s, constraints, seed + 1 + b, pool=small)
        return ratios(w)

    cands: dict[str, Candidate] = {
        "surrogate_topk": Candidate(
            "surrogate_topk",
            ratios(w_top),
            w_top,
            {"surrogate_objective": info["predicted"]},
            bootstrap_interval(topk_rep, len(table), B, seed),
            f"mean of the surrogate's top {info['top_k']} of {info['pool']} candidates, fitted on {info['n_train']} trials",
        )
    }
    bi = best_index(y)
    cands["best_trial"] = Candidate(
        "best_trial",
        table.R[bi] if np.isfinite(table.R[bi]).all() else ratios(W[bi]),
        W[bi],
        {"measured_objective": float(y[bi])},
        bootstrap_interval(lambda idx, b: ratios(W[idx][best_index(y[idx])]), len(table), B, seed),
        f"trial {int(table.number[bi])}"
        + (f" (baseline {table.baseline[bi]})" if table.baseline[bi] else ""),
    )
    if law is not None:
        if law.law.domains != domains:
            raise StageError(
                f"{run.law / 'fit.json'}: fitted on {law.law.domains}, not {domains}; rerun `demix law check`"
            )
        cands["law"] = law.candidate(general, beta, B, seed)
    model = fit(W, y, s, seed)
    for c in cands.values():
        if c.w is not None:
            c.predicted.setdefault("surrogate_objective", float(model.predict(c.w)[0]))
        if law is not None:
            c.predicted.setdefault("law_loss", law.loss(c.r))
    choice = cfg.export.choose
    if choice not in cands:
        raise StageError(
            f"export.choose={choice} but the law has not been fitted ({run.law / 'check.json'} missing); "
            f"run `demix law check {run.root}` or choose surrogate_topk / best_trial"
        )
    warnings = []
    top = np.argsort(-np.where(np.isfinite(y), y, -np.inf))[: max(3, len(y) // 10)]
    g = domains.index(general)
    edge = edge_warning(cands[choice].r, domains, general, beta, cfg.export.edge_tolerance, W[top, g])
    if edge:
        warnings.append(edge)
    iv = cands[choice].interval
    if iv is not None:
        off = [
            d
            for d, x, (lo, hi) in zip(domains, cands[choice].r, iv, strict=True)
            if not lo - 1e-9 <= x <= hi + 1e-9
        ]
        if off:
            warnings.append(
                f"the {choice} shares of {', '.join(off)} fall outside their bootstrap intervals: refitted on "
                f"resampled trials the recommendation moves a lot, so {len(table)} trials do not pin it down; "
                "run more search trials before trusting those shares"
            )
    pareto: list[dict[str, Any]] = []
    if cfg.search.objectives == "groups" and table.objectives:
        for i in pareto_front(table.group_matrix()):
            pareto.append(
                {
                    "trial": int(table.number[i]),
                    "objectives": {gname: float(table.objectives[gname][i]) for gname in table.groups},
                    "objective": float(y[i]),
                    "r": as_dict(table.R[i], domains),
                    "w": as_dict(W[i], domains),
                }
            )
    search_report = dict(searched.get("report") or {})
    return Recommendation(domains, general, beta, choice, cands, pareto, warnings, len(table), search_report)


def recommend(cfg: ExperimentConfig, run: RunDir, *, force: bool = False) -> Recommendation:
    """The recommendation of a finished search; cached in ``export/recommendation.json``.

    Raises:
        StageError: the search has not run or is unfinished, or ``export.choose=law`` without a law.
    """
    table = _check_finished(cfg, run, load_trials(run.trials_csv))
    inputs = inputs_hash(cfg, run)
    path = run.export / "recommendation.json"
    if path.is_file() and not force:
        old = read_json(path)
        if old.get("provenance", {}).get("inputs") == inputs:
            return Recommendation.from_json(old)
    rec = build_recommendation(cfg, run, table)
    write_json_atomic(path, {**rec.to_json(), "provenance": provenance(inputs)})
    return rec
