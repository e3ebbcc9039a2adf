"""Options and helpers every command shares: CONFIG-or-RUN, ``--set`` overrides, ``--run-dir``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from demix.config import ExperimentConfig, load_config
from demix.errors import ConfigError
from demix.run import RunDir

ConfigArg = Annotated[
    Path,
    typer.Argument(help="Experiment YAML, or a run directory (its config.yaml is used).", show_default=False),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set train.lr=3e-4 (repeatable)."),
]
RunDirOpt = Annotated[Path | None, typer.Option("--run-dir", help="Run directory (default: runs/<name>).")]


def load(
    config_or_run: Path, overrides: list[str] | None = None, run_dir: Path | None = None
) -> tuple[ExperimentConfig, RunDir]:
    """Load the config from a YAML file or from a run directory's ``config.yaml``.

    A run directory given as the argument is also the run directory, unless ``--run-dir`` says otherwise.
    """
    path = Path(config_or_run)
    if path.is_dir():
        cfg_path = path / "config.yaml"
        if not cfg_path.is_file():
            raise ConfigError("is a directory without config.yaml (not a demix run)", path=path)
        cfg = load_config(cfg_path, overrides)
        return cfg, RunDir(run_dir if run_dir is not None else path)
    cfg = load_config(path, overrides)
    return cfg, RunDir.for_config(cfg, run_dir)
