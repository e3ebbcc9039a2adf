"""``demix search``: the Optuna study over merge weights; ``--show`` prints the best trials."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from demix.cli.common import ConfigArg, RunDirOpt, SetOpt, load
from demix.config import ExperimentConfig
from demix.run import RunDir


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search_cmd(
        config: ConfigArg,
        set_: SetOpt = None,
        run_dir: RunDirOpt = None,
        workers: Annotated[
            int | None,
            typer.Option("--workers", min=1, help="Worker processes on this machine (one per GPU if any)."),
        ] = None,
        storage: Annotated[
            str | None,
            typer.Option(
                "--storage",
                help="Optuna storage: a URL (postgresql://..., sqlite:///...) or a journal file. Run the "
                "same command with the same URL on another machine to join the study.",
            ),
        ] = None,
        n_trials: Annotated[
            int | None, typer.Option("--n-trials", min=1, help="Search trials after the baselines.")
        ] = None,
        show: Annotated[bool, typer.Option("--show", help="Print the best trials and exit.")] = False,
        top: Annotated[int, typer.Option("--top", min=1, help="Rows for --show.")] = 10,
    ) -> None:
        """Search merge weights with Optuna: baselines first, then the sampler's trials, then DeMix's
        top-k recommended mixture scored on the report tasks. Resumes where it stopped."""
        flags = {"search.workers": workers, "search.storage": storage, "search.n_trials": n_trials}
        cfg, run = load(config, set_, run_dir, flags=flags, stages=("merge", "evaluate", "search"))
        if show:
            typer.echo(_show(cfg, run, top))
            return
        from demix.run.lock import hold
        from demix.search import run_search
        from demix.search.storage import resolve_storage

        if cfg.search.storage is None:  # with a storage URL this may be one of many workers
            hold(run.root, note=lambda m: typer.echo(f"note: {m}", err=True))

        study = run_search(cfg, run)
        from demix.search.context import domains_and_counts
        from demix.search.trials import best_table

        domains, _ = domains_and_counts(cfg, run)
        typer.echo(best_table(study, domains, top=5))
        rec = run.search / "recommendation.json"
        if rec.is_file():
            _print_recommendation(rec)
        spec = resolve_storage(run.search, cfg.search.storage, cfg.search.workers)
        typer.echo(f"trials: {run.trials_csv}\ndashboard: optuna-dashboard {spec.dashboard}")


def _show(cfg: ExperimentConfig, run: RunDir, top: int) -> str:
    import optuna

    from demix.errors import StageError
    from demix.search.context import domains_and_counts
    from demix.search.storage import open_storage, resolve_storage
    from demix.search.trials import best_table

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = resolve_storage(run.search, cfg.search.storage, cfg.search.workers)
    name = cfg.search.study_name or cfg.name
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(spec))
    except KeyError:
        raise StageError(f"no study {name!r} in {spec.shown}; run `demix search` first") from None
    domains, _ = domains_and_counts(cfg, run)
    return best_table(study, domains, top=top)


def _print_recommendation(path: Path) -> None:
    import json

    rec = json.loads(path.read_text())
    mix = ", ".join(f"{d}={v:.3f}" for d, v in rec["r"].items())
    typer.echo(f"recommended data ratios (surrogate top-{rec['surrogate']['top_k']}): {mix}")
    rep = rec.get("report") or {}
    if rep:
        parts = [
            f"{n} {rep[n]['objective']:.3f}"
            for n in ("recommended", "best_trial", "uniform", "prior", "base_model")
            if n in rep
        ]
        typer.echo("report-task objective: " + ", ".join(parts))
