"""The rules of ``demix compare`` (and ``demix run --with-compare``), checked before anything trains.

The comparison trains the base's check models first and the methods' models after them, so a
config the comparison refuses at a method (the law's swarm too small, a hand mixture naming an
unknown source, DeMix's answer missing) would otherwise fail after minutes or hours of training.
Each rule returns ``"<key>: <what is wrong>"`` lines, as every rule of :mod:`demix.preflight.rules`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from demix.config import ExperimentConfig

if TYPE_CHECKING:
    from demix.run import RunDir


def law_swarm(cfg: ExperimentConfig, run: RunDir | None) -> list[str]:
    """The law has K + 2 parameters per domain's loss (c, k and one t per candidate), so it is
    fitted on K + 2 swarm mixtures at least (the comparison's law fit refuses fewer, but only once
    the swarm is trained).

    ``compare.law.subset`` (the fitting subset) is held to the same minimum and must leave a run
    out. ``compare.swarm.count`` is the whole swarm: validation references reused by
    ``compare.swarm.reuse_validation`` are part of it, not added to it, so the count itself must
    reach K + 2 whether or not validation has run.
    """
    if "law" not in cfg.compare.method_names:
        return []
    k = len(cfg.domains)
    need, count, subset = k + 2, cfg.compare.swarm.count, cfg.compare.law.subset
    out = []
    if count < need:
        out.append(
            f"compare.swarm.count={count}: the law (in compare.methods) is fitted on at least K + 2 = {need} "
            f"swarm mixtures over the {k} candidates; raise compare.swarm.count to {need} or more "
            "(validation references reused by compare.swarm.reuse_validation count towards it), "
            "or leave law out of compare.methods"
        )
    if subset is not None and not need <= subset < count:
        out.append(
            f"compare.law.subset={subset}: the law is fitted on that many of the {count} swarm models "
            f"(compare.swarm.count), so it must be at least K + 2 = {need} and below {count}"
        )
    return out


def hand_mixtures(cfg: ExperimentConfig, run: RunDir | None) -> list[str]:
    """Every source a hand mixture gives a ratio names a candidate: the comparison reads the
    mixtures by candidate name, so a misspelt one would drop that share silently or fail at its
    method (:func:`demix.compare.methods.fixed_answers`, whose message this repeats)."""
    names = cfg.domains
    return [
        f"compare.mixtures.{name}: {unknown!r} is not a candidate ({', '.join(names)})"
        for name, mix in cfg.compare.mixtures.items()
        for unknown in sorted(set(mix) - set(names))
    ]


def demix_recommendation(cfg: ExperimentConfig, run: RunDir | None) -> list[str]:
    """Method demix compares the search's recommendation (``export/recommendation.json``).

    Checked only for ``demix compare RUN`` on its own: under ``demix run --with-compare`` the
    recommend stage writes the file before the comparison reads it.
    """
    if "demix" not in cfg.compare.method_names or run is None:
        return []
    path = run.export / "recommendation.json"
    if path.is_file():
        return []
    return [
        f"compare.methods: demix compares the search's recommendation, but {path} is missing; "
        "run `demix run` first (or `demix run --with-compare`, which writes it before comparing), "
        "or leave demix out of compare.methods"
    ]
