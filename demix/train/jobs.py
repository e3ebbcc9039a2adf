"""The uses of the trainer: the base model, one component per candidate, reference models, and a
DoReMi proxy (:func:`train_doremi`).

Each job's result depends on a spec (model and trainer settings, data mixture, budget, the data's
hashes and the initial checkpoint's hash); a job whose final checkpoint records the same spec hash is
skipped, and a job with a resumable checkpoint for that spec continues from it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from demix.config import ExperimentConfig
from demix.data import Manifest
from demix.errors import ConfigError, DemixError, StageError
from demix.run import RunDir
from demix.train.dist import dist_info
from demix.train.loop import TrainJob, run_job
from demix.train.weighting import doremi_settings
from demix.util.hashing import hash_file, hash_json

# Trainer settings that change the weights; the rest (logging, device, eval cadence) do not.
_TRAIN_KEYS = (
    "seq_len",
    "micro_batch_size",
    "min_lr_ratio",
    "warmup_frac",
    "weight_decay",
    "betas",
    "grad_clip",
    "dtype",
    "seed",
)


def _seed(cfg: ExperimentConfig, kind: str, name: str) -> int:
    return int(hash_json([cfg.train.seed, kind, name])[:8], 16)


def read_summary(out: Path) -> dict[str, Any] | None:
    """A finished checkpoint's ``train_summary.json``, or None when it is missing or unreadable."""
    path = Path(out) / "train_summary.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_done(job: TrainJob) -> bool:
    """True when ``job.out`` holds a finished checkpoint for exactly this job's inputs."""
    summary = read_summary(job.out)
    return (
        summary is not None
        and summary.get("inputs_hash") == job.inputs_hash
        and (job.out / "model.safetensors").is_file()
        and (job.out / "config.json").is_file()
    )


def _make_job(
    cfg: ExperimentConfig,
    manifest: Manifest,
    *,
    kind: str,
    name: str,
    out: Path,
    ratios: np.ndarray,
    tokens: int,
    lr: float,
    init: Path | None,
    init_hash: str | None,
    doremi_reference: Path | None = None,
) -> TrainJob:
    """A job and its spec; DoReMi weights when ``doremi_reference`` is given or the config asks
    (``train.domain_weights: doremi``) and the job draws from two domains or more: over one domain
    the weights have nothing to tune, and such a job (the base) stays the static job it was."""
    tc = cfg.train.model_dump(mode="json")
    world = dist_info().world_size
    spec = {
        "kind": kind,
        "model": cfg.model.model_dump(mode="json"),
        "train": {k: tc[k] for k in _TRAIN_KEYS},
        "slots": world * cfg.train.grad_accum,  # micro-batches per step (see loop.py)
        "tokens": tokens,
        "lr": lr,
        "mixture": {n: round(float(r), 12) for n, r in zip(manifest.names, ratios, strict=True) if r > 0},
        "data": {
            "tokenizer": manifest.tokenizer_hash,
            **{d.name: d.content_hash for d, r in zip(manifest.domains, ratios, strict=True) if r > 0},
        },
        "init": init_hash,
    }
    weighting = None
    tuned = doremi_reference is not None or cfg.train.domain_weights == "doremi"
    if tuned and int(np.count_nonzero(ratios)) > 1:
        ref = doremi_reference or cfg.train.doremi.reference
        assert ref is not None  # TrainConfig requires it for domain_weights=doremi
        weighting = doremi_settings(cfg, manifest, ratios, ref)
        spec["domain_weights"] = weighting.spec(manifest.names)  # static jobs: no key, the same hash
    return TrainJob(
        kind=kind,
        name=name,
        out=out,
        ratios=np.asarray(ratios, dtype=np.float64),
        tokens=tokens,
        peak_lr=lr,
        seed=_seed(cfg, kind, name),
        init=init,
        spec=spec,
        inputs_hash=hash_json(spec),
        weighting=weighting,
    )


def base_job(cfg: ExperimentConfig, run: RunDir, manifest: Manifest) -> TrainJob:
    """The base model: fresh init, general data only, ``train.base_tokens`` at ``train.base_lr``."""
    ratios = np.zeros(len(manifest.names))
    ratios[manifest.index(manifest.general)] = 1.0
    return _make_job(
        cfg,
        manifest,
        kind="base",
        name="base",
        out=run.base,
        ratios=ratios,
        tokens=cfg.train.base_tokens,
        lr=cfg.train.base_lr or cfg.train.lr,
        init=None,
        init_hash=None,
    )


def _base_init(cfg: ExperimentConfig, run: RunDir, manifest: Manifest) -> tuple[Path, str]:
    """The finished base checkpoint and its weights hash, refusing a missing or stale base."""
    base = base_job(cfg, run, manifest)
    summary = read_summary(run.base)
    if summary is None or not (run.base / "model.safetensors").is_file():
        raise StageError(f"no trained base model at {run.base}; run `demix train base` first")
    if summary.get("inputs_hash") != base.inputs_hash:
        raise StageError(
            f"the base model at {run.base} was trained with other settings than this config; "
            "run `demix train base` again first"
        )
    weights = summary.get("weights_sha256") or hash_file(run.base / "model.safetensors")
    return run.base, str(weights)


def component_ratios(manifest: Manifest, domain: str, beta: float) -> np.ndarray:
    """(1-β)·e_domain + β·e_general; for the general candidate itself that is just general."""
    r = np.zeros(len(manifest.names))
    r[manifest.index(domain)] += 1.0 - beta
    r[manifest.index(manifest.general)] += beta
    return r


def component_job(
    cfg: ExperimentConfig, run: RunDir, manifest: Manifest, domain: str, init: tuple[Path, str]
) -> TrainJob:
    return _make_job(
        cfg,
        manifest,
        kind="component",
        name=domain,
        out=run.component(domain),
        ratios=component_ratios(manifest, domain, cfg.train.beta),
        tokens=cfg.train.component_tokens,
        lr=cfg.train.lr,
        init=init[0],
        init_hash=init[1],
    )


def train_base(cfg: ExperimentConfig, run: RunDir, *, progress: bool = True, fresh: bool = False) -> Path:
    """Train the base model on the general data (skipped when done with the same inputs).

    Args:
        fresh: discard a resumable checkpoint instead of continuing from it.

    Returns:
        ``run.base``, a Hugging Face checkpoint directory.
    """
    manifest = Manifest.load(run)
    job = base_job(cfg, run, manifest)
    if is_done(job) and not fresh:
        return job.out
    return run_job(cfg, run, manifest, job, progress=progress, fresh=fresh)


def train_components(
    cfg: ExperimentConfig,
    run: RunDir,
    domains: Sequence[str] | None = None,
    *,
    progress: bool = True,
    fresh: bool = False,
    parallel: bool = False,
) -> dict[str, Path]:
    """Continue pretraining from the base on (1-β)·candidate + β·general, one component per candidate.

    Args:
        domains: which components (default: every candidate, in manifest order).
        fresh: discard resumable checkpoints instead of continuing from them.
        parallel: with several GPUs, train one component per GPU in subprocesses.

    Returns:
        Domain -> component checkpoint directory, in manifest order.
    """
    manifest = Manifest.load(run)
    names = list(domains) if domains else manifest.names
    for d in names:
        manifest.domain(d)  # raises naming an unknown domain
    names = [d for d in manifest.names if d in set(names)]
    init = _base_init(cfg, run, manifest)
    jobs = {d: component_job(cfg, run, manifest, d, init) for d in names}
    todo = [d for d, j in jobs.items() if fresh or not is_done(j)]
    if parallel and len(todo) > 1:
        from demix.train.parallel import gpu_count, train_components_parallel

        if gpu_count() > 1 and dist_info().world_size == 1:
            train_components_parallel(cfg, run, todo, fresh=fresh)
            todo = [d for d in todo if not is_done(jobs[d])]
            if todo:
                raise DemixError(f"parallel training did not finish component(s): {', '.join(todo)}")
    for d in todo:
        run_job(cfg, run, manifest, jobs[d], progress=progress, fresh=fresh)
    return {d: j.out for d, j in jobs.items()}


def train_reference(
    cfg: ExperimentConfig,
    run: RunDir,
    ratios: np.ndarray,
    ref_id: str,
    *,
    tokens: int | None = None,
    progress: bool = True,
    fresh: bool = False,
) -> Path:
    """Continue pretraining from the base on the data mixture ``ratios`` (a reference model).

    Args:
        ratios: data ratios in manifest order (normalised here).
        ref_id: the directory name under ``models/references/``.
        tokens: token budget (default ``train.reference_tokens``, else ``train.component_tokens``).

    Returns:
        ``run.reference(ref_id)``.
    """
    manifest = Manifest.load(run)
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (len(manifest.names),) or not np.all(np.isfinite(r)) or np.any(r < 0) or r.sum() <= 0:
        raise DemixError(
            f"reference mixture must be {len(manifest.names)} values >= 0, not all 0; got {r.tolist()}"
        )
    if not ref_id or "/" in ref_id or ref_id.startswith("."):
        raise DemixError(f"reference id {ref_id!r} must be a plain directory name")
    init = _base_init(cfg, run, manifest)
    job = _make_job(
        cfg,
        manifest,
        kind="reference",
        name=ref_id,
        out=run.reference(ref_id),
        ratios=r / r.sum(),
        tokens=tokens if tokens is not None else cfg.train.reference_budget,
        lr=cfg.train.lr,
        init=init[0],
        init_hash=init[1],
    )
    if is_done(job) and not fresh:
        return job.out
    return run_job(cfg, run, manifest, job, progress=progress, fresh=fresh)


def _reference_mixture(manifest: Manifest, reference: Path) -> np.ndarray:
    """The data mixture a reference model was trained on (its summary), else uniform."""
    summary = read_summary(reference) or {}
    mixture = summary.get("mixture")
    if not isinstance(mixture, dict):
        return np.full(len(manifest.names), 1.0 / len(manifest.names))
    r = np.array([float(mixture.get(n, 0.0)) for n in manifest.names])
    if r.sum() <= 0:
        raise DemixError(
            "the reference's train_summary.json mixture names no domain of this run", path=reference
        )
    return r / r.sum()


def train_doremi(
    cfg: ExperimentConfig,
    run: RunDir,
    reference_dir: Path | None = None,
    out: Path | None = None,
    *,
    ratios: np.ndarray | None = None,
    tokens: int | None = None,
    from_base: bool = True,
    progress: bool = True,
    fresh: bool = False,
) -> Path:
    """Train a DoReMi proxy against a reference model; its averaged weights are DoReMi's answer.

    The proxy draws its data with the reference's mixture and is trained with group DRO, its domain
    weights updated online (``train.doremi``: η, ε, update interval, starting weights;
    :mod:`demix.train.weighting`). ``out/domain_weights.jsonl`` holds the trajectory and
    ``train_summary.json`` the averaged weights under ``domain_weights.averaged``
    (:func:`doremi_weights`). Resumable and skipped when done, like every job.

    Args:
        reference_dir: the reference model (default ``train.doremi.reference``), e.g. a
            :func:`train_reference` output.
        out: the proxy's directory (default ``models/doremi`` in the run).
        ratios: the data mixture drawn, in manifest order (default: the reference's, from its
            ``train_summary.json``; uniform when it has none).
        tokens: token budget (default ``train.reference_tokens``, else ``train.component_tokens``).
        from_base: continue from the run's base model, as references do (False: a fresh init).

    Raises:
        ConfigError: no reference model given.
        DemixError: the reference is missing or does not fit this run.
    """
    manifest = Manifest.load(run)
    ref = Path(reference_dir) if reference_dir is not None else cfg.train.doremi.reference
    if ref is None:
        raise ConfigError("train.doremi.reference: the DoReMi proxy needs a reference model")
    out = Path(out) if out is not None else run.models / "doremi"
    r = _reference_mixture(manifest, ref) if ratios is None else np.asarray(ratios, dtype=np.float64)
    if r.shape != (len(manifest.names),) or not np.all(np.isfinite(r)) or np.any(r < 0) or r.sum() <= 0:
        raise DemixError(
            f"DoReMi mixture must be {len(manifest.names)} values >= 0, not all 0; got {r.tolist()}"
        )
    if np.count_nonzero(r) < 2:
        raise DemixError(f"a DoReMi proxy needs a mixture of two domains or more; got {r.tolist()}")
    init, init_hash = _base_init(cfg, run, manifest) if from_base else (None, None)
    job = _make_job(
        cfg,
        manifest,
        kind="doremi",
        name="doremi",  # also the data-order seed's: a proxy's data does not depend on where it is written
        out=out,
        ratios=r / r.sum(),
        tokens=tokens if tokens is not None else cfg.train.reference_budget,
        lr=cfg.train.lr,
        init=init,
        init_hash=init_hash,
        doremi_reference=ref,
    )
    if is_done(job) and not fresh:
        return job.out
    return run_job(cfg, run, manifest, job, progress=progress, fresh=fresh)


def doremi_weights(out: Path) -> dict[str, float] | None:
    """The averaged DoReMi weights of a finished job in ``out`` (None: none recorded there)."""
    dw = (read_summary(out) or {}).get("domain_weights")
    return dict(dw["averaged"]) if isinstance(dw, dict) and isinstance(dw.get("averaged"), dict) else None
