"""``demix recommend``: the recommended mixture of a finished search, three ways, side by side.

Reads the search's products (``search/trials.csv``, ``search/recommendation.json``) and, when the
law stage ran, ``law/check.json`` / ``law/fit.json``; builds the :mod:`demix.recommend.choices`
candidates with bootstrap intervals over trials, picks the one ``export.choose`` names, and writes
``export/recommendation.json``. Recomputed only when its inputs (trials, law files, config) change.

From the search it uses the public :func:`demix.search.surrogate_inputs`, ``candidate_pool`` and
``recommend_topk`` (the surrogate refitted on bootstrap resamples), and ``search.surrogate.fit``
to predict the other candidates' objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.config import ExperimentConfig
from demix.errors import StageError
from demix.mixture import as_dict, from_mapping, weights_to_ratios
from demix.recommend.choices import Candidate, best_index, bootstrap_interval, edge_warning, pareto_front
from demix.recommend.law import LawView, load_law
from demix.recommend.table import TrialsTable, load_trials
from demix.run import RunDir
from demix.util.hashing import hash_file, hash_json
from demix.util.io import read_json, write_json_atomic
from demix.util.provenance import provenance

if TYPE_CHECKING:
    from demix.search import SurrogateInputs

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


def finished_trials(cfg: ExperimentConfig, run: RunDir) -> TrialsTable:
    """The completed trials of a finished search (``search/trials.csv``).

    Raises:
        StageError: the search has not run, or is unfinished.
    """
    return _check_finished(cfg, run, load_trials(run.trials_csv))


def _surrogate_inputs(cfg: ExperimentConfig, run: RunDir, domains: list[str]) -> SurrogateInputs:
    """The search's constraints, pool prior and token counts, built the way the search built them."""
    from demix.search import surrogate_inputs

    inputs = surrogate_inputs(cfg, run)
    if list(inputs.domains) != list(domains):
        raise StageError(
            f"{run.trials_csv}: domains {domains} differ from the run's {inputs.domains}; rerun the search"
        )
    return inputs


def _search_product(run: RunDir) -> dict[str, Any]:
    """``search/recommendation.json`` (the search's own top-k, scored on the report tasks), or ``{}``."""
    path = run.search / "recommendation.json"
    return read_json(path) if path.is_file() else {}


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


def _ratios(cfg: ExperimentConfig, table: TrialsTable, w: np.ndarray) -> np.ndarray:
    return weights_to_ratios(w, table.domains, cfg.general, cfg.train.beta)


def _surrogate_candidate(
    cfg: ExperimentConfig, table: TrialsTable, inputs: SurrogateInputs, searched: dict[str, Any]
) -> Candidate:
    """DeMix's choice: the mean of the surrogate's top-k, with an interval from refits on resamples.

    The search's own top-k (``searched["w"]``, fitted on full-precision weights) replaces the refit
    mean when it covers the same domains; the interval still comes from refits.
    """
    from demix.search import candidate_pool, recommend_topk

    s, seed = cfg.search.demix, cfg.search.seed
    W, y, prior, constraints = table.W, table.objective, inputs.pool_prior, inputs.constraints
    pool = candidate_pool(prior, s, constraints, seed)
    w_top, info = recommend_topk(W, y, prior, s, constraints, seed, pool=pool)
    if isinstance(searched.get("w"), dict) and set(searched["w"]) == set(table.domains):
        w_top = from_mapping(searched["w"], table.domains)
        info["predicted"] = float(searched.get("predicted_objective", info["predicted"]))
    rng = np.random.default_rng(seed)
    # keep the pool's order: tree predictions tie often, and top-k breaks ties by position
    small = pool[np.sort(rng.choice(len(pool), size=min(len(pool), BOOTSTRAP_POOL), replace=False))]

    def replicate(idx: np.ndarray, b: int) -> np.ndarray | None:
        if len(np.unique(idx)) < 2:
            return None
        w, _ = recommend_topk(W[idx], y[idx], prior, s, constraints, seed + 1 + b, pool=small)
        return _ratios(cfg, table, w)

    return Candidate(
        "surrogate_topk",
        _ratios(cfg, table, w_top),
        w_top,
        {"surrogate_objective": info["predicted"]},
        bootstrap_interval(replicate, len(table), cfg.export.bootstrap, seed),
        f"mean of the surrogate's top {info['top_k']} of {info['pool']} candidates, fitted on {info['n_train']} trials",
    )


def _best_trial_candidate(cfg: ExperimentConfig, table: TrialsTable) -> Candidate:
    """The best measured proxy, with an interval from the best of each resample."""
    W, y = table.W, table.objective
    bi = best_index(y)

    def replicate(idx: np.ndarray, b: int) -> np.ndarray:
        return _ratios(cfg, table, W[idx][best_index(y[idx])])

    return Candidate(
        "best_trial",
        table.R[bi] if np.isfinite(table.R[bi]).all() else _ratios(cfg, table, W[bi]),
        W[bi],
        {"measured_objective": float(y[bi])},
        bootstrap_interval(replicate, len(table), cfg.export.bootstrap, cfg.search.seed),
        f"trial {int(table.number[bi])}"
        + (f" (baseline {table.baseline[bi]})" if table.baseline[bi] else ""),
    )


def _law_candidate(cfg: ExperimentConfig, run: RunDir, law: LawView, domains: list[str]) -> Candidate:
    if law.law.domains != domains:
        raise StageError(
            f"{run.law / 'fit.json'}: fitted on {law.law.domains}, not {domains}; rerun `demix law check`"
        )
    return law.candidate(cfg.general, cfg.train.beta, cfg.export.bootstrap, cfg.search.seed)


def _add_predictions(
    cfg: ExperimentConfig, table: TrialsTable, cands: dict[str, Candidate], law: LawView | None
) -> None:
    """Fill in what the surrogate (fitted on every trial) and the law say about each candidate."""
    from demix.search.surrogate import fit

    model = fit(table.W, table.objective, cfg.search.demix, cfg.search.seed)
    for c in cands.values():
        if c.w is not None:
            c.predicted.setdefault("surrogate_objective", float(model.predict(c.w)[0]))
        if law is not None:
            c.predicted.setdefault("law_loss", law.loss(c.r))


def _warnings(cfg: ExperimentConfig, table: TrialsTable, chosen: Candidate) -> list[str]:
    """The beta-edge warning, and shares that fall outside their own bootstrap interval."""
    domains, general, y = table.domains, cfg.general, table.objective
    warnings = []
    top = np.argsort(-np.where(np.isfinite(y), y, -np.inf))[: max(3, len(y) // 10)]
    g = domains.index(general)
    edge = edge_warning(
        chosen.r, domains, general, cfg.train.beta, cfg.export.edge_tolerance, table.W[top, g]
    )
    if edge:
        warnings.append(edge)
    iv = chosen.interval
    if iv is not None:
        off = [
            d for d, x, (lo, hi) in zip(domains, chosen.r, iv, strict=True) if not lo - 1e-9 <= x <= hi + 1e-9
        ]
        if off:
            warnings.append(
                f"the {chosen.name} shares of {', '.join(off)} fall outside their bootstrap intervals: refitted on "
                f"resampled trials the recommendation moves a lot, so {len(table)} trials do not pin it down; "
                "run more search trials before trusting those shares (raise search.n_trials and run again: "
                "the study continues, the trials so far are kept)"
            )
    return warnings


def _pareto(cfg: ExperimentConfig, table: TrialsTable) -> list[dict[str, Any]]:
    """In multi-objective mode, the measured trials no other trial dominates on every group."""
    if cfg.search.objectives != "groups" or not table.objectives:
        return []
    return [
        {
            "trial": int(table.number[i]),
            "objectives": {g: float(table.objectives[g][i]) for g in table.groups},
            "objective": float(table.objective[i]),
            "r": as_dict(table.R[i], table.domains),
            "w": as_dict(table.W[i], table.domains),
        }
        for i in pareto_front(table.group_matrix())
    ]


def build_recommendation(
    cfg: ExperimentConfig, run: RunDir, table: TrialsTable, *, with_law: bool = True
) -> Recommendation:
    """The candidates, intervals, Pareto set and warnings from completed trials (no files written).

    Args:
        with_law: add the law optimum when the law stage ran (``law/check.json``).
    """
    domains = table.domains
    inputs = _surrogate_inputs(cfg, run, domains)
    law = load_law(cfg, run, inputs.token_counts) if with_law else None
    searched = _search_product(run)
    cands = {
        "surrogate_topk": _surrogate_candidate(cfg, table, inputs, searched),
        "best_trial": _best_trial_candidate(cfg, table),
    }
    if law is not None:
        cands["law"] = _law_candidate(cfg, run, law, domains)
    _add_predictions(cfg, table, cands, law)
    choice = cfg.export.choose
    if choice not in cands:
        raise StageError(
            f"export.choose={choice} but the law has not been fitted ({run.law / 'check.json'} missing); "
            f"run `demix law check {run.root}` or choose surrogate_topk / best_trial"
        )
    return Recommendation(
        domains,
        cfg.general,
        cfg.train.beta,
        choice,
        cands,
        _pareto(cfg, table),
        _warnings(cfg, table, cands[choice]),
        len(table),
        dict(searched.get("report") or {}),
    )


def recommend(
    cfg: ExperimentConfig, run: RunDir, *, force: bool = False, trials: TrialsTable | None = None
) -> Recommendation:
    """The recommendation of a finished search; cached in ``export/recommendation.json``.

    Args:
        force: recompute even when the cache matches its inputs.
        trials: the run's :func:`finished_trials`, when the caller has already read them.

    Raises:
        StageError: the search has not run or is unfinished, or ``export.choose=law`` without a law.
    """
    table = trials if trials is not None else finished_trials(cfg, run)
    inputs = inputs_hash(cfg, run)
    path = run.export / "recommendation.json"
    if path.is_file() and not force:
        old = read_json(path)
        if old.get("provenance", {}).get("inputs") == inputs:
            return Recommendation.from_json(old)
    rec = build_recommendation(cfg, run, table)
    write_json_atomic(path, {**rec.to_json(), "provenance": provenance(inputs)})
    return rec
