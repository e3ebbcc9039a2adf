"""Options and helpers every command shares: CONFIG-or-RUN, ``--set`` overrides, ``--run-dir``, and
the one way a flag that shadows a config key is applied (:func:`load`'s ``flags``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from demix.config import ExperimentConfig, load_config
from demix.errors import ConfigError, DemixError
from demix.run import RunDir

ConfigArg = Annotated[
    Path,
    typer.Argument(help="Experiment YAML, or a run directory (its config.yaml is used).", show_default=False),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set train.lr=3e-4 (repeatable)."),
]
RunDirOpt = Annotated[Path | None, typer.Option("--run-dir", help="Run directory (default: `runs/<name>`).")]


def parse_tokens(value: str | None, flag: str = "--tokens") -> int | None:
    """A token count flag (``100B``, ``2.5M``, ``4096``); ``None`` when not given.

    Raises:
        DemixError: not a count, or not > 0 (the message names the flag).
    """
    from demix.util.units import parse_count

    if value is None:
        return None
    try:
        n = parse_count(value)
    except ValueError as e:
        raise DemixError(f"{flag}: {e}") from None
    if n <= 0:
        raise DemixError(f"{flag} {value}: must be > 0")
    return n


def load(
    config_or_run: Path,
    overrides: list[str] | None = None,
    run_dir: Path | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    check: bool = True,
    stages: tuple[str, ...] | None = None,
) -> tuple[ExperimentConfig, RunDir]:
    """Load the config from a YAML file or from a run directory's ``config.yaml``, then check every
    rule a later stage would (:func:`demix.preflight.require`), so a command fails before it starts.

    A run directory given as the argument is also the run directory, unless ``--run-dir`` says otherwise.

    Args:
        overrides: the ``--set KEY=VALUE`` strings.
        flags: the command's flags that shadow config keys, as ``{"search.n_trials": n_trials}``
            (``None``: not given). Applied after ``--set`` and validated with the whole config, the
            one way every command applies such a flag.
        defaults: the command's own defaults for keys the config leaves unset or null.
        check: run the cross-stage rules (``False`` only for commands that read a finished run).
        stages: the stages the command runs: only their rules are checked (``None``: every rule).

    Raises:
        ConfigError: naming the file and every key at fault.
    """
    path = Path(config_or_run)
    if path.is_dir():
        cfg_path = path / "config.yaml"
        if not cfg_path.exists():
            raise ConfigError("is a directory without config.yaml (not a demix run)", path=path)
        cfg = load_config(cfg_path, overrides, values=flags, defaults=defaults)
        run = RunDir(run_dir if run_dir is not None else path)
    else:
        cfg_path = path
        cfg = load_config(path, overrides, values=flags, defaults=defaults)
        run = RunDir.for_config(cfg, run_dir)
    if check:
        from demix.preflight import require

        require(cfg, run, path=cfg_path, stages=stages)
    return cfg, run


def console() -> Any:
    """A rich console for tables: the terminal's width on a terminal; elsewhere (a log file, a pipe,
    CI) wide enough that no cell is cut to ``5.07…``: values in logs must be whole."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=10_000)
