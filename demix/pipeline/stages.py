"""The stages of ``demix run``, each with the config keys it reads.

``reads`` are the dotted keys (a section or a prefix covers everything under it) whose value can
change a stage's result: they, and the hashes of the stages it builds on, are its inputs hash.
``ignores`` are keys the stage reads that cannot change its result (threads, logging and checkpoint
cadence, progress output, worker counts): changing them redoes nothing. A key a stage reads that is
in neither fails ``tests/test_pipeline_keys.py``, which runs every stage with a recording config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from demix.compare import compare
from demix.config import ExperimentConfig
from demix.data import prepare
from demix.export import export
from demix.export.formats import FORMATS
from demix.law import check
from demix.recommend import recommend
from demix.report import report
from demix.run import RunDir
from demix.search import run_search
from demix.train import train_base, train_components
from demix.validate import validate


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: the keys it reads, the stages it builds on, what it writes."""

    name: str
    needs: tuple[str, ...]
    fn: Callable[[ExperimentConfig, RunDir], object]
    reads: tuple[str, ...]
    ignores: tuple[str, ...] = ()
    optional: bool = False
    # Why the stage has nothing to do for this config (e.g. components brought from elsewhere need no
    # training), or None: such a stage is shown and reported as "not needed" and never runs.
    unneeded: Callable[[ExperimentConfig], str | None] = lambda cfg: None
    # Outputs (relative to the run) set aside before the stage is redone because it was forced or its
    # inputs changed: under models/ and search/ they are moved to superseded/, the rest removed.
    # prepare redoes only what changed by itself, so it has none.
    outputs: tuple[str, ...] = ()
    # Integer keys whose increase asks for more of the same work (more search trials): when only they
    # changed, each to a larger value, the stage continues over what it did instead of redoing it.
    # Only for keys whose larger run begins with the smaller one (seeded by ticket, not by history).
    grows: tuple[str, ...] = ()


# Keys no stage's result depends on: where the run lives and how fast or loudly it runs.
_EVERYWHERE = ("run_dir",)


def _brought(cfg: ExperimentConfig) -> str | None:
    """Components named by ``merge.components`` were trained elsewhere: demix trains none."""
    if cfg.components is not None:
        return "the components: section names the components"
    return "merge.components names the components" if cfg.merge.components else None


def _nothing_to_prepare(cfg: ExperimentConfig) -> str | None:
    """Brought components with no held-out text: no data to prepare (the user's tasks score)."""
    if cfg.components is not None and not cfg.components.has_heldout:
        return "the components: section gives no held-out text"
    return None


def _no_domain_losses(cfg: ExperimentConfig) -> str | None:
    """The law is fitted to per-domain losses, which only the built-in bits-per-byte tasks give."""
    b = cfg.evaluate.builtin
    if b.enabled and b.bpb:
        return None
    where = (
        "give components.candidates.<name>.heldout"
        if cfg.components is not None
        else "turn on evaluate.builtin.bpb"
    )
    return f"no per-domain losses to fit the law to ({where}: held-out text scored as bits per byte)"


# The trainer's knobs that change speed, logs or resumability but not the weights it ends with.
# compile and threads change floating-point summation order only, like any other kernel choice;
# eval_every only spaces the intermediate held-out evaluations (the last step always evaluates);
# spike_factor only decides whether a diverging run stops.
_TRAIN_COSMETIC = (
    "train.threads",
    "train.progress",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoint",
    "train.eval_every",
    "train.compile",
    "train.spike_factor",
)
_TRAIN_RESULT = (
    "model",
    "train.seq_len",
    "train.micro_batch_size",
    "train.grad_accum",
    "train.lr",
    "train.min_lr_ratio",
    "train.warmup_frac",
    "train.weight_decay",
    "train.betas",
    "train.grad_clip",
    "train.dtype",
    "train.device",
    "train.eval_tokens",
    "train.seed",
    "train.save_dtype",
    "train.domain_weights",
    "train.doremi",
)
# The merge engine's knobs that change memory use or speed, not the proxy's weights.
_MERGE_COSMETIC = ("merge.host_memory_fallback", "merge.compile", "merge.backend")
# Whole sections are read, less their cosmetic keys (``ignores`` carve them out): a key added to a
# section later is a result key until someone says otherwise, which redoes work rather than keeping
# a stale result.
_LAW_RESULT = ("law",)
_LAW_COSMETIC = ("law.threads",)  # the fit's CPU threads
_MERGE_RESULT = ("merge",)
# Scoring proxies: the batch size changes padding, not what is scored (like threads).
_EVAL_COSMETIC = ("evaluate.batch_size",)
_EVAL_RESULT = ("evaluate",)
# The search's workers race for an exact trial budget; timeout_s only stops one invocation early
# (the next one resumes the study).
_SEARCH_COSMETIC = ("search.workers", "search.timeout_s")
_SEARCH_RESULT = (
    "name",  # the default study name
    "seed",
    "search",
    "corpora.general",  # w -> r (every trial stores both)
    "train.beta",
)
# demix compare trains and scores models like validate, fits the law on its swarm and optimises it
# under the search's constraints and epoch cap; it reuses validation references of its swarm budget.
_COMPARE_RESULT = (
    "compare",
    "validate",
    *_EVAL_RESULT,
    *_TRAIN_RESULT,
    *_LAW_RESULT,
    "train.beta",
    "train.reference_tokens",
    "train.component_tokens",
    "corpora.general",
    "search.constraints",
    "search.token_counts",
    "search.min_weight",
    "export.target_tokens",
    "export.max_epochs",
)
STAGES: tuple[Stage, ...] = (
    Stage(
        "prepare",
        (),
        prepare,
        reads=(
            "seed",
            "corpora.recipe",
            "corpora.candidates",
            "corpora.general",
            "corpora.builtin_bytes",
            "corpora.val_fraction",
            "corpora.val_max_docs",
            "corpora.min_val_docs",
            "corpora.dedup_threshold",
            "corpora.seed",
            "tokenizer",
            "components",  # brought components: their held-out text only, counts in the manifest
            "search.token_counts",
        ),
        ignores=(*_EVERYWHERE, "name", "corpora.num_proc"),
        unneeded=_nothing_to_prepare,
    ),
    Stage(
        "train-base",
        ("prepare",),
        train_base,
        reads=(*_TRAIN_RESULT, "train.base_lr", "train.base_tokens"),
        # Read while planning every job; only the components and references train with them.
        ignores=(
            *_EVERYWHERE,
            *_TRAIN_COSMETIC,
            "train.beta",
            "train.component_tokens",
            "train.reference_tokens",
        ),
        unneeded=_brought,
        outputs=("models/base",),
    ),
    Stage(
        "train-components",
        ("train-base",),
        train_components,
        reads=(*_TRAIN_RESULT, "train.beta", "train.component_tokens"),
        # The base model's own settings reach the components through train-base's hash.
        ignores=(
            *_EVERYWHERE,
            *_TRAIN_COSMETIC,
            "train.base_lr",
            "train.base_tokens",
            "train.reference_tokens",
        ),
        unneeded=_brought,
        outputs=("models/components",),
    ),
    Stage(
        "search",
        ("train-components",),
        run_search,
        reads=(
            *_SEARCH_RESULT,
            *_MERGE_RESULT,
            *_EVAL_RESULT,
            "export.target_tokens",  # the epoch cap on the ratios searched (search.constraints.cap_epochs)
            "export.max_epochs",
            "export.bootstrap",  # the recommendation's share intervals
            "export.edge_tolerance",
        ),
        ignores=(*_EVERYWHERE, *_SEARCH_COSMETIC, *_MERGE_COSMETIC, *_EVAL_COSMETIC),
        outputs=("search", "tasks"),
        # More trials resume the study: its trials so far are what a larger study starts with (the
        # DeMix and random samplers draw by ticket; Optuna's own continue from the trials' history).
        grows=("search.n_trials",),
    ),
    Stage(
        "law",
        ("search",),
        check,
        reads=(*_LAW_RESULT, *_SEARCH_RESULT, "export.target_tokens", "export.max_epochs"),
        ignores=(*_EVERYWHERE, *_SEARCH_COSMETIC, *_LAW_COSMETIC),
        unneeded=_no_domain_losses,
        outputs=("law",),
    ),
    Stage(
        "recommend",
        ("law",),
        recommend,
        reads=(
            *_LAW_RESULT,
            *_SEARCH_RESULT,
            "export.choose",
            "export.target_tokens",
            "export.max_epochs",
            "export.bootstrap",
            "export.edge_tolerance",
        ),
        ignores=(*_EVERYWHERE, *_SEARCH_COSMETIC, *_LAW_COSMETIC),
    ),
    Stage(
        "export",
        ("recommend",),
        export,
        reads=("export", "search.constraints", "search.token_counts"),
        ignores=_EVERYWHERE,
        # The files it writes, not export/ itself: export/recommendation.json there is the recommend
        # stage's (its surrogate refits took longer than the export) and is kept while it is current.
        outputs=(*(f"export/{name}" for name, _ in FORMATS.values()), "export/methods"),
    ),
    Stage(
        "compare",
        ("export",),
        compare,
        reads=_COMPARE_RESULT,
        ignores=(*_EVERYWHERE, *_TRAIN_COSMETIC, *_EVAL_COSMETIC, *_LAW_COSMETIC),
        optional=True,
        outputs=("compare", "models/compare"),
        # A larger swarm extends the smaller one (demix.compare.designs draws prefix-stably); its
        # trained members and scores are reused, the fits and answers made again.
        grows=("compare.swarm.count",),
    ),
    Stage(
        "report",
        ("export",),
        report,
        reads=("export",),
        ignores=_EVERYWHERE,
        outputs=("report",),
    ),
    Stage(
        "validate",
        ("train-components",),
        validate,
        reads=(
            "validate",
            *_EVAL_RESULT,
            *_MERGE_RESULT,
            *_TRAIN_RESULT,
            "train.beta",
            "train.reference_tokens",
            "train.component_tokens",
        ),
        ignores=(*_EVERYWHERE, *_TRAIN_COSMETIC, *_MERGE_COSMETIC, *_EVAL_COSMETIC),
        optional=True,
        outputs=("validation", "models/references"),
        # More mixtures: the first ones are the same (validate.sample_weights), their references kept.
        grows=("validate.mixtures",),
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
