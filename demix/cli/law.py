"""``demix law fit | predict | optimize | check``: the data-mixing law (Ye et al., ICLR 2025)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from demix.cli.common import ConfigArg, RunDirOpt, SetOpt, load

if TYPE_CHECKING:
    from demix.config import ExperimentConfig, LawConfig
    from demix.law import MixingLaw

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Experiment YAML or run directory for law settings and constraints."),
]


def _cfg(config: Path | None, overrides: list[str] | None) -> ExperimentConfig | None:
    return load(config, overrides)[0] if config is not None else None


def _law_settings(cfg: ExperimentConfig | None, overrides: list[str] | None) -> LawConfig:
    """The ``law`` section: the config's, or, with no config, defaults with ``--set law.*``."""
    from pydantic import ValidationError

    from demix.config import LawConfig
    from demix.config.load import apply_overrides, format_validation_error
    from demix.errors import ConfigError

    if cfg is not None:
        return cfg.law
    data = apply_overrides({}, overrides or [])
    other = sorted(set(data) - {"law"})
    if other:
        raise ConfigError(f"--set {other[0]}.…: without --config only law.* keys apply")
    try:
        return LawConfig.model_validate(data.get("law") or {})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, ("law",))) from None


def _weights_file(path: Path | None, targets: list[str]) -> Any:
    import numpy as np

    from demix.errors import DataError
    from demix.util.io import read_json

    if path is None:
        return None
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise DataError("must be a JSON object {validation domain: weight}", path=path)
    unknown = sorted(set(doc) - set(targets))
    if unknown:
        raise DataError(f"{unknown[0]!r} is not a validation domain of the table ({targets})", path=path)
    return np.array([float(doc.get(t, 0.0)) for t in targets])


def _print_law(law: MixingLaw) -> None:
    width = max(8, *(len(t) for t in law.targets))
    from demix.law.mixing import exponent_note

    print(law.formula())
    note = exponent_note(law.exponent, law.info)
    if note:
        print(f"exponent {note}")
    print(f"t_ij (rows: validation domain, columns: share of {', '.join(law.domains)}); negative helps")
    for i, t in enumerate(law.targets):
        cells = " ".join(f"{v:+8.3f}" for v in law.t[i])
        print(f"{t:<{width}} c={law.c[i]:.4f} k={law.k[i]:.4f}  {cells}")


def register(app: typer.Typer) -> None:
    law_app = typer.Typer(
        help="Fit, predict, optimise and cross-check the data-mixing law.", no_args_is_help=True
    )
    app.add_typer(law_app, name="law")

    @law_app.command("fit")
    def fit_cmd(
        source: Annotated[
            Path, typer.Argument(help="Measurement CSV (mix:<d>, loss:<d>), or a run directory.")
        ],
        out: Annotated[
            Path | None, typer.Option("--out", help="Fit JSON (default: RUN/law/fit.json).")
        ] = None,
        config: ConfigOpt = None,
        overrides: SetOpt = None,
        weights: Annotated[
            Path | None,
            typer.Option("--weights", help="JSON {validation domain: weight} of the overall loss."),
        ] = None,
        step: Annotated[
            float | None, typer.Option("--step", help="Target training steps (nested laws).")
        ] = None,
        size: Annotated[
            str | None, typer.Option("--size", help="Target model size, e.g. 70M (nested laws).")
        ] = None,
        references: Annotated[
            bool,
            typer.Option(
                "--references", help="Fit a run's trained references (validation.json), not its trials."
            ),
        ] = False,
    ) -> None:
        """Fit L_i(r) = c_i + k_i exp(sum_j t_ij r_j^p) per validation domain and write the fit JSON.

        p is chosen among law.exponents (default 1 and 0.5) by cross-validation on the rows;
        --set law.exponents=[1.0] fits the paper's law.

        A ``loss:overall`` column is the overall validation loss: without --weights, the weights of
        the per-domain losses in it are learned from the rows (or, with no per-domain columns, the
        law is fitted to it directly), and `demix law predict` writes pred:aggregate.
        """
        import numpy as np

        import demix.law as law
        from demix.errors import DemixError
        from demix.run import RunDir
        from demix.util.hashing import hash_file, hash_json
        from demix.util.provenance import provenance

        if references and not source.is_dir():
            raise DemixError(f"--references needs a run directory, got {source}")
        csv_path, run_root = (
            (source / "search" / "trials.csv", source) if references else law.resolve_input(source)
        )
        if config is None and run_root is not None and (run_root / "config.yaml").is_file():
            config = run_root
        cfg = _cfg(config, overrides)
        lc = _law_settings(cfg, overrides)
        if references:
            csv_path = RunDir(source).validation / "validation.json"
            table = law.read_references(RunDir(source))
        else:
            table = law.read_table(csv_path)
        try:
            tsize = law.io.parse_size(size) if size is not None else lc.target_size
        except ValueError:
            raise DemixError(f"--size {size!r}: not a size (e.g. 70M, 1.4B, 125000000)") from None
        tstep = step if step is not None else lc.target_step
        ext = law.at_target(
            table.R,
            table.L,
            table.step,
            table.size,
            target_step=tstep,
            target_size=tsize,
            delta=lc.huber_delta,
        )
        targets, L, overall = law.split_overall(table.targets, ext.L)
        agg = _weights_file(weights, targets)
        run = RunDir(run_root) if run_root is not None else None
        if overall is not None:
            # loss:overall measured: given weights (--weights, law.aggregate_weights) or learned ones.
            if agg is None and cfg is not None and cfg.law.aggregate_weights:
                agg = law.aggregate_weights(cfg, run, targets)
            fitted = law.fit_with_overall(
                ext.R, L, overall, lc, domains=table.domains, targets=targets, aggregate=agg
            )
            how = fitted.info["aggregate"]
            mae = how.get("measured_mae")
            gap = f" (measured losses so weighted miss it by {mae:.4f} on average)" if mae is not None else ""
            print(f"overall loss: {how['source']}{gap}")
        else:
            if agg is None and cfg is not None:
                agg = law.aggregate_weights(cfg, run, targets)
            fitted = law.fit(ext.R, L, lc, domains=table.domains, targets=targets, aggregate=agg)
        dest = out if out is not None else (run.law / "fit.json" if run is not None else None)
        if dest is None:
            raise DemixError(
                "--out is required when fitting a CSV (a run directory defaults to law/fit.json)"
            )
        inputs = {"table": hash_file(csv_path), "law": hash_json(lc.model_dump(mode="json"))}
        extra = {
            "source": str(csv_path),
            "nested": {"target_step": ext.step, "target_size": ext.size, "step_curves": ext.curves},
            "mixtures_fitted": len(ext.R),
            "provenance": provenance(inputs),
        }
        law.save_fit(fitted, dest, extra)
        _print_law(fitted)
        measured = L if L.shape[1] or overall is None else overall[:, None]
        fit_mae = float(np.nanmean(np.abs(fitted.predict(ext.R) - measured)))
        print(f"fitted on {len(ext.R)} mixtures, mean absolute fit error {fit_mae:.4f}; wrote {dest}")

    @law_app.command("predict")
    def predict_cmd(
        fit_json: Annotated[Path, typer.Argument(help="Fit JSON from `demix law fit` (or a run directory).")],
        mixtures: Annotated[Path, typer.Argument(help="CSV with mix:<d> columns for the law's domains.")],
        out: Annotated[Path, typer.Option("--out", help="Output CSV: the input rows plus pred: columns.")],
    ) -> None:
        """Predict per-domain losses (and the overall loss when weights are known) for mixtures."""
        import csv
        import io

        import numpy as np

        import demix.law as law
        from demix.errors import DataError
        from demix.util.io import write_text_atomic

        fitted = law.load_fit(fit_json)
        table = law.read_table(mixtures, require_loss=False)
        missing = [d for d in fitted.domains if d not in table.domains]
        if missing:
            raise DataError(
                f"missing columns: 'mix:{missing[0]}' (the law's domains: {fitted.domains})", path=mixtures
            )
        extra = [d for d in table.domains if d not in fitted.domains]
        if extra:
            raise DataError(
                f"column 'mix:{extra[0]}' is not a domain of the law ({fitted.domains})", path=mixtures
            )
        R = table.R[:, [table.domains.index(d) for d in fitted.domains]]
        P = fitted.predict(R)
        agg = fitted.predict_aggregate(R) if fitted.aggregate is not None else None
        with mixtures.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        cols = list(rows[0].keys()) if rows else []
        cols += [f"pred:{t}" for t in fitted.targets] + (["pred:aggregate"] if agg is not None else [])
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for j, i in enumerate(table.rows - 1):
            row = dict(rows[i]) | {f"pred:{t}": f"{P[j, v]:.6g}" for v, t in enumerate(fitted.targets)}
            if agg is not None:
                row["pred:aggregate"] = f"{agg[j]:.6g}"
            w.writerow(row)
        write_text_atomic(out, buf.getvalue())
        print(f"predicted {len(P)} mixtures x {len(fitted.targets)} domains -> {out}")
        if agg is not None:
            print(f"overall loss: min {np.min(agg):.4f}, max {np.max(agg):.4f}")

    @law_app.command("optimize")
    def optimize_cmd(
        fit_json: Annotated[Path, typer.Argument(help="Fit JSON from `demix law fit` (or a run directory).")],
        config: ConfigOpt = None,
        overrides: SetOpt = None,
        out: Annotated[Path | None, typer.Option("--out", help="Write the optimum as JSON here.")] = None,
    ) -> None:
        """The mixture the law predicts is best, under the config's search constraints if given."""
        import numpy as np

        import demix.law as law
        from demix.mixture import as_dict, format_weights
        from demix.util.hashing import hash_file
        from demix.util.io import write_json_atomic
        from demix.util.provenance import provenance

        fitted = law.load_fit(fit_json)
        cfg = _cfg(config, overrides)
        if fitted.aggregate is None:
            fitted = fitted.with_aggregate(np.full(len(fitted.targets), 1.0 / len(fitted.targets)))
            print("no aggregation weights in the fit: using the mean over validation domains")
        bounds = law.bounds_for(cfg, fitted.domains) if cfg is not None else None
        lc = _law_settings(cfg, overrides)
        opt = law.optimize(fitted, bounds, starts=lc.optimize_starts, seed=lc.seed)
        print(f"law optimum r: {format_weights(opt.r, fitted.domains)}")
        print(f"predicted overall loss {opt.loss:.4f}")
        if out is not None:
            src = fit_json if fit_json.is_file() else fit_json / "law" / "fit.json"
            doc = {
                "r": as_dict(opt.r, fitted.domains),
                "predicted_loss": opt.loss,
                "predicted": as_dict(opt.per_domain, fitted.targets),
                "provenance": provenance({"fit": hash_file(src)}),
            }
            write_json_atomic(out, doc)
            print(f"wrote {out}")

    @law_app.command("check")
    def check_cmd(config: ConfigArg, overrides: SetOpt = None, run_dir: RunDirOpt = None) -> None:
        """Fit the law on part of the trials, predict the rest, compare its optimum with the search's."""
        import demix.law as law

        cfg, run = load(config, overrides, run_dir)
        doc = law.check(cfg, run)
        print(doc["summary"])
        print(doc["verdict"])
        print(f"wrote {run.law / 'check.json'}")
