"""``demix merge``: export one merged proxy as an HF checkpoint (the search merges in memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from demix.cli.common import ConfigArg, RunDirOpt, SetOpt, load


def register(app: typer.Typer) -> None:
    @app.command("merge")
    def merge_cmd(
        config: ConfigArg,
        weights: Annotated[
            str,
            typer.Option(
                "--weights",
                help="Merge weights: name=w,... (domains from the manifest; missing ones 0). "
                "Normalised to sum 1 unless --no-normalize.",
            ),
        ],
        out: Annotated[Path, typer.Option("--out", help="Directory of the exported HF checkpoint.")],
        method: Annotated[
            str | None,
            typer.Option(
                "--method", help="linear, task_arithmetic, or a mergekit method (default: merge.method)."
            ),
        ] = None,
        no_normalize: Annotated[
            bool, typer.Option("--no-normalize", help="Keep weights as given (task_arithmetic only).")
        ] = False,
        set_: SetOpt = None,
        run_dir: RunDirOpt = None,
    ) -> None:
        """Merge the run's components with the given weights and write the proxy as an HF checkpoint
        (config.json, model.safetensors, tokenizer) that AutoModelForCausalLM.from_pretrained loads."""
        import time

        cfg, run = load(
            config,
            set_,
            run_dir,
            flags={"merge.method": method, "merge.normalize": False if no_normalize else None},
            # One merge: compiling the fused sum (worth it over a search's many merges) would cost more.
            defaults={"merge.compile": False},
            stages=("merge",),
        )
        m = cfg.merge

        from demix.merge import check_weights, component_dirs, engine_for_run, get_method
        from demix.mixture import parse_weights

        names, _ = component_dirs(cfg, run)
        w = parse_weights(weights, names, normalize=False).tolist()
        check_weights(w, names, normalize=m.normalize, method=m.method)  # before the (slow) load
        get_method(m.method)
        t0 = time.perf_counter()
        engine = engine_for_run(cfg, run)
        t1 = time.perf_counter()
        engine.merge(w, method=m.method, normalize=m.normalize, params=m.method_params)
        t2 = time.perf_counter()
        tok = run.tokenizer if run.tokenizer.is_dir() else None
        engine.save(out, tokenizer_dir=tok)
        typer.echo(
            f"wrote {out} ({m.method}, {engine.numel:,} params; load {t1 - t0:.2f}s, merge "
            f"{(t2 - t1) * 1e3:.1f} ms, save {time.perf_counter() - t2:.2f}s)"
        )
