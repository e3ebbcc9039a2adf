"""The library function behind ``demix evaluate``: score one model (a proxy or any checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from demix.config import ExperimentConfig
from demix.errors import DemixError
from demix.evaluate.harness import Evaluator, load_checkpoint, load_task_dicts
from demix.evaluate.result import EvalResult
from demix.evaluate.spec import EvalRole, TaskSuite
from demix.evaluate.tasks import build_tasks
from demix.run import RunDir
from demix.util.hashing import hash_json
from demix.util.io import write_json_atomic
from demix.util.provenance import provenance


def tokenizer_dir(cfg: ExperimentConfig, run: RunDir) -> Path:
    """Where the tokenizer proxies are scored with lives: the run's (``data/tokenizer``, once
    prepared); with components brought from elsewhere and nothing prepared, theirs
    (``components.tokenizer``, else the first component's directory); else the first component's."""
    if run.tokenizer.is_dir():
        return run.tokenizer
    if cfg.merge.components:
        named = cfg.tokenizer.name_or_path if cfg.tokenizer.kind == "pretrained" else None
        if named is not None and Path(named).is_dir():
            return Path(named)
        return Path(next(iter(cfg.merge.components.values())))
    return run.component(cfg.domains[0])


def proxy_tokenizer(cfg: ExperimentConfig, run: RunDir, model_config: Any) -> Any:
    """The tokenizer proxies are scored with, refused (exit 2, the fix named) when its ids overrun
    the components' embedding: a crash deep inside lm-eval otherwise."""
    from transformers import AutoTokenizer

    from demix.merge import check_tokenizer

    where = tokenizer_dir(cfg, run)
    check_tokenizer(where, model_config)
    if where == run.tokenizer:
        from demix.data import load_tokenizer

        return load_tokenizer(run)
    try:
        return AutoTokenizer.from_pretrained(str(where))
    except (OSError, ValueError) as e:
        raise DemixError(f"cannot load the run's tokenizer: {e}", path=where) from None


def evaluate_model(
    cfg: ExperimentConfig,
    run: RunDir,
    *,
    weights: str | None = None,
    checkpoint: Path | None = None,
    role: EvalRole = "all",
    quiet: bool = True,
) -> tuple[EvalResult, dict[str, Any], TaskSuite]:
    """Evaluate a proxy merged with ``weights`` (``name=w,...``) or a checkpoint directory.

    Returns:
        (result, source, suite): source says what was evaluated (weights and data ratios, or the path).

    Raises:
        DemixError: neither or both of weights/checkpoint, bad weights, unknown tasks, bad files.
    """
    if (weights is None) == (checkpoint is None):
        raise DemixError("give exactly one of --weights name=w,... or --checkpoint DIR")
    suite = build_tasks(cfg, run)
    task_dicts = load_task_dicts(suite, cfg.evaluate)  # bad task names or files fail before any model loads
    if checkpoint is not None:
        tok_dir = run.tokenizer if run.tokenizer.is_dir() else None
        model, tokenizer = load_checkpoint(Path(checkpoint), cfg.evaluate, tok_dir)
        source: dict[str, Any] = {"checkpoint": str(Path(checkpoint).resolve())}
    else:
        from demix.merge import engine_for_run
        from demix.mixture import as_dict, parse_weights, weights_to_ratios

        engine = engine_for_run(cfg, run)
        assert weights is not None
        w = parse_weights(weights, engine.names, normalize=cfg.merge.normalize)
        engine.merge(
            w, method=cfg.merge.method, normalize=cfg.merge.normalize, params=cfg.merge.method_params
        )
        model, tokenizer = engine.model, proxy_tokenizer(cfg, run, engine.model.config)
        source = {"weights": as_dict(w, engine.names), "method": cfg.merge.method}
        if cfg.corpora.general in engine.names:
            r = weights_to_ratios(w, engine.names, cfg.general, cfg.train.beta)
            source["ratios"] = as_dict(r, engine.names)
    ev = Evaluator(cfg, run, model, tokenizer, suite, quiet=quiet, task_dicts=task_dicts)
    return ev.evaluate(role), source, suite


def default_output(run: RunDir, source: dict[str, Any]) -> Path:
    """``run/eval/<checkpoint name>.json`` or ``run/eval/weights-<hash>.json``."""
    if "checkpoint" in source:
        label = Path(source["checkpoint"]).name or "checkpoint"
    else:
        label = "weights-" + hash_json(source["weights"])[:10]
    return run.root / "eval" / f"{label}.json"


def write_result(path: Path, result: EvalResult, source: dict[str, Any], suite: TaskSuite) -> None:
    """Write every metric with its stderr, the source and provenance as JSON (atomically)."""
    body = {"source": source, **result.to_json(), "suite_notes": list(suite.notes)}
    write_json_atomic(Path(path), {**body, "provenance": provenance({"source": hash_json(source)})})
