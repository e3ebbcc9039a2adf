"""The study driver: baselines first, then workers pop trial tickets until the budget is done.

``run_search`` is the library function behind ``demix search``. A trial: Optuna proposes raw draws,
they map to feasible weights w, the scorer merges and evaluates the proxy, and the objective
(normalised against the frozen baselines) goes back to the study with w, r, every task metric and
the timings as user attributes. Workers are processes on this machine (one per GPU when there are
GPUs); the same command with the same storage on another machine joins the study.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.config import ExperimentConfig, config_from_dict
from demix.errors import DemixError, StageError
from demix.run import RunDir
from demix.search import storage as st
from demix.search.context import SearchContext, build_context
from demix.search.samplers import SINGLE_OBJECTIVE_ONLY
from demix.search.scoring import Score, Scorer
from demix.search.trials import write_trials_csv
from demix.util.io import write_json_atomic
from demix.util.provenance import provenance

if TYPE_CHECKING:
    import optuna

ScorerFactory = Callable[[ExperimentConfig, RunDir], Scorer]
STUDY_ATTRS = ("domains", "groups", "objectives", "baselines")


def default_scorer(cfg: ExperimentConfig, run: RunDir) -> Scorer:
    """The real scorer: components merged into a live model, scored with lm-eval."""
    from demix.search.proxy import ProxyScorer

    return ProxyScorer(cfg, run)


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def baseline_mixtures(ctx: SearchContext) -> dict[str, np.ndarray]:
    """uniform, the token-count prior, and each single component."""
    k = len(ctx.domains)
    out = {"uniform": np.full(k, 1.0 / k), "prior": ctx.prior}
    for i, d in enumerate(ctx.domains):
        out[f"only:{d}"] = np.eye(k)[i]
    return out


def load_baselines(study: optuna.Study) -> dict[str, Score]:
    raw = study.user_attrs.get("demix:baselines") or {}
    return {name: Score.from_json(b["score"]) for name, b in raw.items()}


def open_study(ctx: SearchContext, scorer: Callable[[], Scorer]) -> optuna.Study:
    """Create the study (or load it, checking it was made for the same domains and objectives)."""
    import optuna

    storage = st.open_storage(ctx.spec)
    try:
        study = optuna.load_study(study_name=ctx.study_name, storage=storage)
    except KeyError:
        groups = scorer().groups("search") if ctx.multi else ["objective"]
        if not groups:
            raise DemixError("evaluate: no search tasks to optimise") from None
        study = optuna.create_study(
            study_name=ctx.study_name,
            storage=storage,
            directions=["maximize"] * len(groups),
            load_if_exists=True,
        )
        if "demix:domains" not in study.user_attrs:
            study.set_user_attr("demix:domains", ctx.domains)
            study.set_user_attr("demix:groups", groups)
            study.set_user_attr("demix:objectives", ctx.cfg.search.objectives)
    have = study.user_attrs
    if have.get("demix:domains") != ctx.domains or have.get("demix:objectives") != ctx.cfg.search.objectives:
        raise DemixError(
            f"study {ctx.study_name!r} in {ctx.spec.shown} was made for domains "
            f"{have.get('demix:domains')} with objectives={have.get('demix:objectives')}; this run has "
            f"{ctx.domains} with objectives={ctx.cfg.search.objectives} (set search.study_name)"
        )
    return study


def freeze_baselines(
    ctx: SearchContext, study: optuna.Study, scorer: Callable[[], Scorer], progress: bool
) -> None:
    """Score the baselines once, freeze them in the study and baselines.json, record them as trials."""
    import optuna

    raw = study.user_attrs.get("demix:baselines")
    if raw is None:
        mixes = baseline_mixtures(ctx)
        scored = {}
        for name, w in mixes.items():
            scored[name] = scorer().score(w, "search")
            _log(progress, f"baseline {name}: scored in {scored[name].merge_s + scored[name].eval_s:.2f}s")
        raw = {n: {"w": [float(v) for v in mixes[n]], "score": scored[n].to_json()} for n in mixes}
        again = study.user_attrs.get("demix:baselines")  # another machine may have won the race
        if again is None:
            study.set_user_attr("demix:baselines", raw)
        else:
            raw = again
    baselines = load_baselines(study)
    groups = study.user_attrs["demix:groups"]
    if not ctx.run.baselines.is_file():
        write_json_atomic(
            ctx.run.baselines,
            {
                "domains": ctx.domains,
                "baselines": {
                    n: {**b, "r": [float(v) for v in ctx.ratios(np.array(b["w"]))]} for n, b in raw.items()
                },
                "provenance": provenance({"study": f"{ctx.spec.shown}#{ctx.study_name}"}),
            },
        )
    recorded = {t.user_attrs.get(st.BASELINE) for t in study.get_trials(deepcopy=False)}
    dists = ctx.simplex.distributions()
    for name, b in raw.items():
        if name in recorded:
            continue
        w = np.array(b["w"])
        score = baselines[name]
        study.add_trial(
            optuna.trial.create_trial(
                params=ctx.simplex.params(w),
                distributions=dists,  # type: ignore[arg-type]
                values=ctx.values(score, baselines, groups),
                user_attrs={st.BASELINE: name, **ctx.attrs(w, score, baselines)},
            )
        )


def work(
    ctx: SearchContext,
    study: optuna.Study,
    scorer: Scorer,
    *,
    progress: bool = True,
    poll_s: float = 1.0,
) -> int:
    """Pop tickets and score them until none is left, or ``search.timeout_s`` has passed (the
    tickets left wait for the next run). Returns the number of trials this worker ran."""
    import optuna

    timeout = ctx.cfg.search.timeout_s
    deadline = time.monotonic() + timeout if timeout else float("inf")
    baselines = load_baselines(study)
    groups = study.user_attrs["demix:groups"]
    beating = st.heartbeat_enabled(study._storage)
    n = 0
    while time.monotonic() < deadline:
        if beating:
            optuna.storages.fail_stale_trials(study)
        tid = st.pop_ticket(study)
        if tid is None:
            running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if beating and running:  # a crashed worker elsewhere may leave a retry behind
                time.sleep(poll_s)
                continue
            return n
        trial = optuna.Trial(study, tid)
        with st.heartbeat(study, tid):
            try:
                w = ctx.weights(trial)
                score = scorer.score(w, "search")
                for key, value in ctx.attrs(w, score, baselines).items():
                    trial.set_user_attr(key, value)
                values = ctx.values(score, baselines, groups)
            except BaseException:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
        study.tell(trial, values)
        n += 1
        write_trials_csv(study, ctx.run.trials_csv, ctx.domains)
        vals = ", ".join(f"{v:.4f}" for v in values)
        _log(
            progress,
            f"trial {trial.number}: objective {vals} (merge {score.merge_s:.2f}s, eval {score.eval_s:.2f}s)",
        )
    _log(progress, f"search.timeout_s={timeout} reached; rerun the same command to continue")
    return n


def _worker_main(
    cfg_data: dict[str, Any],
    run_root: str,
    workers: int,
    storage: str | None,
    n_trials: int,
    index: int,
    scorer_factory: ScorerFactory,
    progress: bool,
) -> None:
    """Entry point of a worker process (spawned; CUDA_VISIBLE_DEVICES is set by the parent)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = config_from_dict(cfg_data)
    run = RunDir(Path(run_root).resolve())
    ctx = build_context(cfg, run, workers=workers, storage=storage, n_trials=n_trials)
    study = optuna.load_study(study_name=ctx.study_name, storage=st.open_storage(ctx.spec))
    study.sampler = ctx.sampler(len(study.directions), index, len(study.get_trials(deepcopy=False)))
    work(ctx, study, scorer_factory(cfg, run), progress=progress)


def _gpu_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:
        return 0


def _spawn(
    ctx: SearchContext,
    study: optuna.Study,
    workers: int,
    storage: str | None,
    scorer_factory: ScorerFactory,
    progress: bool,
) -> None:
    import multiprocessing as mp

    gpus = _gpu_count() if ctx.cfg.merge.device != "cpu" else 0
    spawn = mp.get_context("spawn")
    procs = []
    data = ctx.cfg.model_dump(mode="json", by_alias=True)
    for i in range(workers):
        env_before = os.environ.get("CUDA_VISIBLE_DEVICES")
        if gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
        p = spawn.Process(
            target=_worker_main,
            args=(data, str(ctx.run.root), workers, storage, ctx.n_trials, i, scorer_factory, progress),
            name=f"demix-search-{i}",
        )
        p.start()
        procs.append(p)
        if gpus:
            if env_before is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = env_before
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=0.5)
            if any(p.exitcode not in (None, 0) for p in procs):  # unblock the others (demix rounds)
                st.recover_stale(
                    study, ctx.spec, ctx.simplex.names, {p.pid for p in procs if p.is_alive() and p.pid}
                )
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    bad = [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
    if bad:
        raise StageError(
            f"search worker(s) {', '.join(f'{n} (exit {c})' for n, c in bad)} stopped; "
            "rerun the same command to resume the study"
        )


def run_search(
    cfg: ExperimentConfig,
    run: RunDir,
    *,
    workers: int | None = None,
    storage: str | None = None,
    n_trials: int | None = None,
    scorer_factory: ScorerFactory = default_scorer,
    recommend: bool = True,
    progress: bool = True,
) -> optuna.Study:
    """Run (or resume, or join) the search and write trials.csv, baselines.json, recommendation.json.

    Args:
        cfg: the experiment. run: its run directory.
        workers: worker processes on this machine (default ``search.workers``).
        storage: an Optuna storage URL or file (default ``search.storage``, else one in the run).
        n_trials: search trials after the baselines (default ``search.n_trials``).
        scorer_factory: builds the scorer in each process (picklable; the real merge + lm-eval one
            by default).
        recommend: score DeMix's top-k recommended mixture on the report tasks afterwards.

    Raises:
        DemixError: bad settings (infeasible constraints, unreachable storage, a sampler that cannot
            do several objectives, a study made for other domains).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    workers = workers or cfg.search.workers
    if cfg.search.objectives == "groups" and cfg.search.sampler in SINGLE_OBJECTIVE_ONLY:
        raise DemixError(
            f"search.sampler={cfg.search.sampler} optimises one objective, but search.objectives=groups "
            "asks for one per capability group; use tpe, gp, qmc or random"
        )
    ctx = build_context(cfg, run, workers=workers, storage=storage, n_trials=n_trials)
    held: list[Scorer] = []

    def scorer() -> Scorer:
        if not held:
            held.append(scorer_factory(cfg, run))
        return held[0]

    study = open_study(ctx, scorer)
    ctx.sampler(len(study.directions), 0, 0)  # fail fast on sampler settings (e.g. cmaes missing)
    freeze_baselines(ctx, study, scorer, progress)
    failed = st.recover_stale(study, ctx.spec, ctx.simplex.names)
    if failed:
        _log(progress, f"trials {failed} were interrupted: marked failed and queued again")
    st.ensure_tickets(study, ctx.n_trials)
    if workers <= 1:
        study.sampler = ctx.sampler(len(study.directions), 0, len(study.get_trials(deepcopy=False)))
        work(ctx, study, scorer(), progress=progress)
    else:
        held.clear()  # free the driver's model before the workers load theirs
        _spawn(ctx, study, workers, storage, scorer_factory, progress)
    write_trials_csv(study, run.trials_csv, ctx.domains)
    _log(
        progress,
        f"study {ctx.study_name!r} in {ctx.spec.shown}: view with `optuna-dashboard {ctx.spec.dashboard}`",
    )
    if recommend:
        from demix.search.topk import write_recommendation

        write_recommendation(ctx, study, scorer, progress=progress)
    return study
