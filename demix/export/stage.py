"""``demix export``: the chosen recommendation as files a data team can use, in ``export/``.

Data ratios r (never merge weights), tokens per source for the target run size, epochs over each
source's available tokens (from the prepare manifest, or ``search.token_counts`` for components
brought from elsewhere), and every format of :mod:`demix.export.formats`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from demix.config import ExperimentConfig
from demix.config.base import format_count
from demix.errors import ConfigError
from demix.export.formats import render
from demix.export.plan import SCHEMA, TokenPlan, token_plan
from demix.mixture import as_dict
from demix.recommend.build import Recommendation, recommend
from demix.run import RunDir
from demix.util.hashing import hash_file
from demix.util.io import write_text_atomic
from demix.util.provenance import provenance


def available_tokens(
    cfg: ExperimentConfig, run: RunDir, domains: list[str]
) -> tuple[np.ndarray | None, dict]:
    """(training tokens per source, :func:`demix.data.manifest.token_counts`; sources per domain, from
    the manifest when prepare ran)."""
    from demix.data.manifest import Manifest, token_counts

    if not run.manifest.is_file():
        return token_counts(cfg, run, domains), {}
    m = Manifest.load(run)
    info = {d.name: d for d in m.domains}
    sources = {d: list(info[d].sources) for d in domains if d in info}
    return token_counts(cfg, run, domains, manifest=m), sources


def document_tokens(run: RunDir, domains: list[str]) -> dict[str, float | None]:
    """Mean tokens per document of each source: its training documents', else (components brought
    from elsewhere) its held-out documents', a sample of the same data; None where prepare read
    neither. A sampler that draws documents, such as ``interleave_datasets``, needs them to turn
    token ratios into draw probabilities."""
    from demix.data.manifest import Manifest

    info = {d.name: d for d in Manifest.load(run).domains} if run.manifest.is_file() else {}
    out: dict[str, float | None] = {}
    for name in domains:
        d = info.get(name)
        if d is not None and d.train_docs > 0:
            out[name] = round(d.train_tokens / d.train_docs, 1)
        elif d is not None and d.val_docs > 0:
            out[name] = round(d.val_tokens / d.val_docs, 1)
        else:
            out[name] = None
    return out


def mixture_document(
    cfg: ExperimentConfig,
    rec: Recommendation,
    plan: TokenPlan,
    sources: dict,
    inputs: dict[str, str],
    doc_tokens: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """The ``recommended_mixture.json`` document every other format renders."""
    c = rec.chosen
    d = rec.domains
    return {
        "schema": SCHEMA,
        "name": cfg.name,
        "choice": rec.choice,
        "domains": d,
        "general": rec.general,
        "beta": rec.beta,
        "ratios": as_dict(plan.ratios, d),
        "target_tokens": plan.target_tokens,
        "tokens": {n: int(t) for n, t in zip(d, plan.tokens, strict=True)},
        "available_tokens": (
            {n: int(a) for n, a in zip(d, plan.available, strict=True)}
            if plan.available is not None
            else None
        ),
        "epochs": as_dict(_significant(plan.epochs), d) if plan.epochs is not None else None,
        "max_epochs": plan.max_epochs,
        "max_target_tokens": plan.max_target,
        "merge_weights": as_dict(c.w, d) if c.w is not None else None,
        "interval": c.to_json(d)["interval"],
        "predicted": dict(c.predicted),
        "alternatives": {
            k: {"r": as_dict(a.r, d), "predicted": dict(a.predicted)}
            for k, a in rec.candidates.items()
            if k != rec.choice
        },
        "megatron_prefix": cfg.export.megatron_prefix,
        "sources": sources,
        "tokens_per_document": doc_tokens,
        "warnings": [*rec.warnings, *plan.warnings],
        "provenance": provenance(inputs),
    }


def method_recommendation(cfg: ExperimentConfig, run: RunDir, method: str) -> Recommendation:
    """Method ``method``'s mixture from ``compare/compare.json`` (``demix compare``) as a recommendation
    to export, so every format renders it as it renders DeMix's; its checked score is its prediction."""
    from demix.errors import StageError
    from demix.recommend.choices import Candidate
    from demix.util.io import read_json

    path = run.root / "compare" / "compare.json"
    if not path.is_file():
        raise StageError(f"--method {method}: no {path}; run `demix compare {run.root}` first")
    doc = read_json(path)
    if method not in doc.get("methods", {}):
        raise ConfigError(f"--method {method}: not in {path} (methods: {', '.join(doc.get('methods', {}))})")
    row, domains = doc["methods"][method], list(doc["domains"])
    r = np.array([float(row["r"][d]) for d in domains])
    predicted = {"trained_score": float(row["trained"]["value"]), **row.get("predicted", {})}
    cand = Candidate(method, r, None, predicted, note=str(row.get("note", "")))
    return Recommendation(domains, cfg.general, cfg.train.beta, method, {method: cand})


def export(
    cfg: ExperimentConfig,
    run: RunDir,
    target_tokens: int | None = None,
    *,
    progress: bool = True,
    method: str | None = None,
) -> list[Path]:
    """Write the chosen mixture in every ``export.formats`` format; returns the files written.

    Args:
        target_tokens: size of the run the mixture is for (default ``export.target_tokens``).
        progress: print warnings (epochs above the cap, the beta edge) to stderr.
        method: export this method's mixture from ``compare/compare.json`` instead, to
            ``export/methods/<method>/``.

    Raises:
        StageError: the search has not run or is unfinished.
        ConfigError: ``export.strict_epochs`` and a source would be repeated more than
            ``export.max_epochs`` times (nothing is written).
    """
    rec = recommend(cfg, run) if method is None else method_recommendation(cfg, run, method)
    out = run.export if method is None else run.export / "methods" / method
    target = int(target_tokens if target_tokens is not None else cfg.export.target_tokens)
    avail, sources = available_tokens(cfg, run, rec.domains)
    plan = token_plan(rec.domains, rec.chosen.r, target, avail, cfg.export.max_epochs)
    if cfg.export.strict_epochs and plan.over_cap:
        first = plan.over_cap[0]
        assert plan.epochs is not None  # over_cap is empty when epochs are unknown
        e = float(plan.epochs[plan.domains.index(first)])
        fix = f"at most --tokens {format_count(plan.max_target)}, " if plan.max_target else ""
        raise ConfigError(
            f"export.strict_epochs: a {format_count(target)}-token run would take {e:.1f} epochs of "
            f"{first!r} (sources over export.max_epochs={cfg.export.max_epochs:g}: "
            f"{', '.join(plan.over_cap)}); use {fix}more data, or a higher export.max_epochs"
        )
    if avail is None:
        plan.warnings.append(
            "token counts unknown (no manifest, no search.token_counts): epochs not computed"
        )
    source = run.export / "recommendation.json" if method is None else run.root / "compare" / "compare.json"
    inputs = {"recommendation" if method is None else "compare": hash_file(source)}
    doc = mixture_document(cfg, rec, plan, sources, inputs, document_tokens(run, rec.domains))
    paths = []
    for fmt in dict.fromkeys(["json", *cfg.export.formats]):
        name, text = render(doc, fmt)
        write_text_atomic(out / name, text)
        paths.append(out / name)
    if progress:
        for w in doc["warnings"]:
            print(f"warning: {w}", file=sys.stderr, flush=True)
    return paths


def _significant(x: np.ndarray, digits: int = 4) -> np.ndarray:
    """Rounded to ``digits`` significant figures: a source taken for 0.00002 epochs (a big corpus,
    a small run) must not read as 0, nor 2.34567 as more precise than the counts behind it."""
    return np.array([float(f"{v:.{digits}g}") for v in x])
