"""Each method's data mixture r (its answer) and what producing it cost.

- ``prior``: the token-count prior (train on each source in proportion to its tokens); ``uniform``;
  hand mixtures (``compare.mixtures``): free, nothing is trained.
- ``demix``: the search's recommendation (``export/recommendation.json``); its cost is the
  components' training plus the search's merge and evaluation seconds.
- ``regmix`` and ``law``: one swarm of small models trained on mixtures drawn from a Dirichlet
  around the prior (:mod:`demix.compare.swarm`); each pays for the whole swarm.
- ``doremi``: a reference trained on the prior mixture, a proxy trained with group DRO against it
  (:func:`demix.train.train_doremi`); the answer is the proxy's averaged domain weights.

The base model is left out of every cost: every method's models start from it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from demix.compare.models import Cost, Models, Trained
from demix.config import ExperimentConfig
from demix.errors import ConfigError, StageError
from demix.mixture import from_mapping
from demix.run import RunDir


@dataclass
class Answer:
    """One method's data mixture, how it was obtained and what it cost.

    ``predicted``: what the method itself says about its answer (its own scale, for the record).
    """

    method: str
    r: np.ndarray
    cost: Cost
    note: str
    predicted: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def normalised(r: np.ndarray) -> np.ndarray:
    r = np.where(np.asarray(r, dtype=np.float64) < 1e-12, 0.0, r)
    return r / r.sum()


def fixed_answers(name: str, cfg: ExperimentConfig, domains: list[str], prior: np.ndarray) -> Answer:
    """prior, uniform, or a hand mixture: nothing trained."""
    if name == "prior":
        return Answer(name, prior.copy(), Cost(), "token counts, normalised")
    if name == "uniform":
        return Answer(name, np.full(len(domains), 1.0 / len(domains)), Cost(), "1/K each")
    mix = cfg.compare.mixtures[name]
    unknown = sorted(set(mix) - set(domains))
    if unknown:
        raise ConfigError(
            f"compare.mixtures.{name}: {unknown[0]!r} is not a candidate ({', '.join(domains)})"
        )
    return Answer(name, normalised(from_mapping(mix, domains)), Cost(), "hand-given (compare.mixtures)")


def _search_seconds(run: RunDir) -> float:
    """Merge and evaluation seconds of every trial the search recorded (0 without a trials table)."""
    if not run.trials_csv.is_file():
        return 0.0
    total = 0.0
    with run.trials_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            for key in ("merge_s", "eval_s"):
                try:
                    total += float(row.get(key) or 0.0)
                except ValueError:
                    continue
    return total


def demix_answer(cfg: ExperimentConfig, run: RunDir, domains: list[str]) -> Answer:
    """The search's recommendation; cost = every component's training + the search's seconds."""
    from demix.recommend.build import Recommendation
    from demix.train import read_summary
    from demix.util.io import read_json

    path = run.export / "recommendation.json"
    if not path.is_file():
        raise StageError(f"compare: method demix needs {path}; run `demix run` (or `demix recommend`) first")
    rec = Recommendation.from_json(read_json(path))
    if list(rec.domains) != domains:
        raise StageError(f"{path}: domains {rec.domains} are not this run's {domains}")
    cost = Cost()
    for d in domains:
        cost.add(read_summary(run.component(d)), f"component {d}")
    cost.seconds += _search_seconds(run)
    cost.parts.append("search (merges + evaluations)")
    c = rec.chosen
    return Answer("demix", normalised(c.r), cost, f"recommendation ({rec.choice})", dict(c.predicted))


def doremi_answer(
    cfg: ExperimentConfig, run: RunDir, models: Models, domains: list[str], reference: Trained
) -> Answer:
    """DoReMi's averaged weights from a proxy trained against ``reference`` (a prior-mixture model),
    drawing the reference's mixture for the reference's budget, from the base as the reference was."""
    from demix.train import doremi_weights, read_summary, train_doremi
    from demix.util.hashing import hash_json

    d = cfg.compare.doremi
    over = {k: v for k, v in (("eta", d.eta), ("epsilon", d.epsilon)) if v is not None}
    dc = cfg.train.doremi.model_copy(update=over)
    dcfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"doremi": dc})})
    tokens = int(reference.summary.get("tokens") or 0) or None
    key = hash_json([reference.id, tokens, dc.model_dump(mode="json", exclude={"reference"})])[:10]
    out = run.models / "compare" / f"doremi-{key}"
    path = train_doremi(
        dcfg, run, reference.path, out, ratios=reference.r, tokens=tokens, progress=models.progress
    )
    weights = doremi_weights(path)
    if weights is None:
        raise StageError(f"the DoReMi proxy at {path} recorded no averaged domain weights")
    cost = reference.cost("reference (prior mixture)")
    cost.add(read_summary(path), "DoReMi proxy")
    return Answer(
        "doremi",
        normalised(from_mapping(weights, domains)),
        cost,
        f"averaged proxy weights (η={dc.eta:g}, ε={dc.epsilon:g})",
        extra={"proxy_dir": str(path), "reference_dir": str(reference.path)},
    )
