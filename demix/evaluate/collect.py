"""Reading lm-eval's results into an :class:`EvalResult`: the metric each task names, its stderr
from the logged per-document values (lm-eval's fast path leaves them empty), and those values in
document order, so two models scored on the same documents compare pairwise.
"""

from __future__ import annotations

from typing import Any

from demix.errors import DemixError
from demix.evaluate.result import EvalResult, Metric, stderr_for
from demix.evaluate.spec import EvalRole, TaskSpec


def _pick_key(entry: dict[str, Any], spec: TaskSpec) -> str:
    keys = [k for k in entry if "," in k and "_stderr," not in k and isinstance(entry[k], int | float)]
    if spec.metric is not None and "," in spec.metric:
        found = [k for k in keys if k == spec.metric]
    elif spec.metric is not None:
        found = sorted(
            (k for k in keys if k.split(",")[0] == spec.metric), key=lambda k: not k.endswith(",none")
        )
    else:
        found = keys
    if not found:
        raise DemixError(
            f"task {spec.name!r}: no metric {spec.metric!r} in lm-eval's results "
            f"(it has: {', '.join(k for k in keys) or 'none'}); fix evaluate.tasks[].metric"
        )
    return found[0]


def _leaf_stats(
    res: dict[str, Any], task: Any, tname: str, key: str, iters: int
) -> tuple[float | None, int, tuple[str, list[Any]]]:
    """stderr, document count and (aggregation, per-document values in document order) of one leaf
    task's metric, from its logged per-document values."""
    metric, _, filt = key.partition(",")
    docs = sorted((s for s in res.get("samples", {}).get(tname, []) if s.get("filter") == filt), key=_doc_id)
    items = [s[metric] for s in docs if metric in s]
    agg = task.aggregation().get(metric)
    name = getattr(agg, "__name__", "")
    return stderr_for(name, float(res["results"][tname][key]), items, agg, iters), len(items), (name, items)


def _doc_id(sample: dict[str, Any]) -> int:
    return int(sample.get("doc_id", 0))


def collect(
    res: dict[str, Any],
    specs: list[TaskSpec],
    task_dicts: dict[str, dict[str, Any]],
    seconds: float,
    role: EvalRole,
    iters: int,
) -> EvalResult:
    out = EvalResult(metrics={}, seconds=seconds, role=role)
    for spec in specs:
        tasks = task_dicts[spec.name]["tasks"]
        entry = res["results"].get(spec.name)
        if entry is None:
            raise DemixError(f"task {spec.name!r}: lm-eval returned no results for it")
        key = _pick_key(entry, spec)
        metric_name = key.split(",")[0]
        value = float(entry[key])
        if spec.name in tasks:
            stderr, n, out.items[spec.name] = _leaf_stats(res, tasks[spec.name], spec.name, key, iters)
        else:  # a group: pool its leaves' stderrs, weighted by size
            stats = [
                _leaf_stats(res, t, tn, key, iters)
                for tn, t in tasks.items()
                if key in res["results"].get(tn, {})
            ]
            n = sum(k for _, k, _ in stats)
            ok = [(se, k) for se, k, _ in stats if se is not None]
            stderr = (sum((k * se) ** 2 for se, k in ok) ** 0.5 / n) if ok and n else None
        hib = (res.get("higher_is_better", {}).get(spec.name) or {}).get(metric_name)
        direction = spec.direction or ("lower" if hib is False else "higher")
        m = Metric(value, stderr, direction, spec.group, key, n, spec.role, spec.weight)
        # Losses run with every role but count only where they are not being reported on.
        if spec.objective and (spec.role != "loss" or role != "report"):
            out.metrics[spec.name] = m
        if spec.kind == "bpb" and spec.role == "loss" and spec.domain is not None:
            out.losses[spec.name] = m
            out.bpb[spec.domain] = value
        detail: dict[str, dict[str, float | None]] = {}
        for k, v in entry.items():
            if "," not in k or "_stderr," in k or not isinstance(v, int | float):
                continue
            se = stderr if k == key else None
            if k != key and spec.name in tasks:
                se = _leaf_stats(res, tasks[spec.name], spec.name, k, iters)[0]
            detail[k] = {"value": float(v), "stderr": se}
        out.details[spec.name] = detail
    return out
