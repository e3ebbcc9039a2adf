"""``demix config validate|show|recipe``."""

from __future__ import annotations

from typing import Annotated

import typer

from demix.cli.common import ConfigArg, SetOpt, load


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Check and print experiment configs.", no_args_is_help=True)

    @group.command("validate")
    def validate(config: ConfigArg, set_: SetOpt = None) -> None:
        """Validate an experiment YAML and every rule a stage checks later (sampler x objectives, merge
        method, lm-eval tasks and include paths, constraints); exit code 2 naming every key at fault."""
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

    @group.command("recipe")
    def recipe(
        name: Annotated[str | None, typer.Argument(help="A shipped recipe (default: list them).")] = None,
    ) -> None:
        """Print a corpora recipe that ships with demix, to copy and edit (or list their names)."""
        from demix.config.load import recipe_text, shipped_recipes

        typer.echo(recipe_text(name) if name else "\n".join(shipped_recipes()), nl=name is None)

    app.add_typer(group, name="config")
