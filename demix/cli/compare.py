"""``demix compare RUN``: every mixing method on the run's candidates, each answer checked by training."""

from __future__ import annotations

from typing import Any

import typer

from demix.cli.common import ConfigArg, RunDirOpt, SetOpt, load


def _count(x: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def format_compare(doc: dict[str, Any]) -> str:
    """The table: method, r per source, cost (tokens, FLOPs, seconds), trained score ± interval, rank."""
    domains = doc["domains"]
    rows = sorted(doc["methods"].items(), key=lambda kv: kv[1]["rank"])
    width = max(8, *(len(m) for m in doc["methods"]))
    head = f"{'method':<{width}} " + " ".join(f"{d[:8]:>8}" for d in domains)
    head += f" {'tokens':>8} {'FLOPs':>8} {'seconds':>8} {'trained score [95%]':>24} {'rank':>5}"
    lines = [
        f"each mixture trained from the base on {doc['check']['tokens']:,} tokens, scored on the report tasks",
        head,
    ]
    for m, row in rows:
        t, c = row["trained"], row["cost"]
        iv = f"{t['value']:.3f} [{t['low']:.3f}, {t['high']:.3f}]"
        lines.append(
            f"{m:<{width}} "
            + " ".join(f"{row['r'][d]:>8.3f}" for d in domains)
            + f" {_count(c['tokens']):>8} {_count(c['flops']):>8} {c['seconds']:>8.1f} {iv:>24} {row['rank']:>5g}"
        )
    for p, o in doc.get("order", {}).items():
        if o.get("same_order") is None:
            continue
        if o["spearman"] != o["spearman"]:  # NaN: one predicted value for every answer
            lines.append(f"{p}'s predictions: one value for every mixture (no order to compare)")
            continue
        lines.append(
            f"{p}'s predictions: Spearman {o['spearman']:.2f} with the trained order"
            f" ({'same' if o['same_order'] else 'not the same'} order; predicted best {o['predicted_best']},"
            f" trained best {o['trained_best']})"
        )
    lines.append(doc.get("verdict") or f"best trained: {doc['best']}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(config: ConfigArg, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
        """Run every method in compare.methods (DeMix, prior, uniform, RegMix, the law, DoReMi, hand
        mixtures) on the run's candidates; train one model per answer on the same budget and rank them."""
        from demix.compare import compare
        from demix.preflight import COMPARE_ALONE

        # alone on a finished run: also what the stages before it must have left (the recommendation)
        cfg, run = load(config, set_, run_dir, stages=("validate", "compare", COMPARE_ALONE))
        doc = compare(cfg, run)
        typer.echo(format_compare(doc))
        typer.echo(f"saved: {run.root / 'compare' / 'compare.json'}")
