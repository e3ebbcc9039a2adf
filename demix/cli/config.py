"""``demix config validate|show``."""

from __future__ import annotations

import typer

from demix.cli.common import ConfigArg, SetOpt, load


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Check and print experiment configs.", no_args_is_help=True)

    @group.command("validate")
    def validate(config: ConfigArg, set_: SetOpt = None) -> None:
        """Validate an experiment YAML; exit code 2 and the key at fault when it is wrong."""
        cfg, run = load(config, set_)
        typer.echo(
            f"ok: {config} ({cfg.name}: {len(cfg.domains)} candidates, general={cfg.general}, run {run.root})"
        )

    @group.command("show")
    def show(config: ConfigArg, set_: SetOpt = None) -> None:
        """Print the resolved config (recipe expanded, overrides applied, defaults filled in)."""
        from demix.config import dump_config

        cfg, _ = load(config, set_)
        typer.echo(dump_config(cfg), nl=False)

    app.add_typer(group, name="config")
