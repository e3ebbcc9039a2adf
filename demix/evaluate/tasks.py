"""Build the run's task suite: lm-eval task YAML + JSONL generated from the held-out documents.

``build_tasks(cfg, run)`` writes under ``run.tasks/`` (idempotent: regenerated only when the held-out
data or the ``evaluate.builtin`` settings change) and returns the :class:`TaskSuite` that also lists
the lm-eval tasks the config adds (``evaluate.tasks``) and their include paths.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from demix.config import ExperimentConfig
from demix.config.evaluate import BuiltinTasksConfig
from demix.errors import ConfigError
from demix.evaluate.items import (
    BUILDERS,
    KINDS,
    ChoiceItem,
    bpb_texts,
    choose_kind,
    default_kind,
    split_docs,
    truncate,
)
from demix.evaluate.spec import PREFIX, TaskSpec, TaskSuite, bpb_task_name
from demix.run import RunDir
from demix.run.records import mark_stage_done, stage_done
from demix.util.hashing import hash_file, hash_json
from demix.util.io import atomic_path, read_json, write_json_atomic, write_text_atomic
from demix.util.provenance import provenance

if TYPE_CHECKING:
    from demix.data import Manifest

GENERATOR_VERSION = 4  # bump when item generation or task specs change, so runs regenerate their tasks
STAGE = "tasks"
SUITE_FILE = "suite.json"


def build_tasks(cfg: ExperimentConfig, run: RunDir) -> TaskSuite:
    """Generate the built-in tasks of a run (when needed) and assemble the whole suite.

    Built-in tasks, per candidate domain (from ``data/manifest.json`` and its held-out text):
    ``demix_bpb_<domain>`` (bits per byte, ``loglikelihood_rolling``) and, for the domain's group,
    ``demix_<kind>_<domain>_search`` / ``_report`` accuracy tasks on disjoint held-out documents.

    Raises:
        StageError: built-in tasks are enabled but the data is not prepared.
        ConfigError: an include path is missing, a task name clashes, or ``evaluate.builtin.kinds``
            names an unknown domain.
    """
    ec = cfg.evaluate
    specs: list[TaskSpec] = []
    notes: list[str] = []
    include: list[Path] = []
    if ec.builtin.enabled and (ec.builtin.bpb or ec.builtin.accuracy):
        builtin, notes = _builtin_tasks(cfg, run)
        specs += builtin
        include.append(run.tasks.resolve())
    for i, p in enumerate(ec.include_paths):
        path = Path(p).expanduser()
        if not path.is_dir():
            raise ConfigError(f"evaluate.include_paths[{i}]: {p} is not a directory of lm-eval task YAML")
        include.append(path.resolve())
    taken = {s.name for s in specs}
    for t in ec.tasks:
        if t.name in taken:
            raise ConfigError(f"evaluate.tasks: {t.name!r} clashes with a built-in task name")
        specs.append(
            TaskSpec(
                name=t.name,
                group=t.group,
                metric=t.metric,
                role=t.role,
                kind="external",
                limit=t.limit,
                num_fewshot=t.num_fewshot,
                weight=t.weight,
            )
        )
    return TaskSuite(tuple(specs), tuple(include), tuple(notes))


# ---- built-in tasks -------------------------------------------------------------------------------


def _builtin_tasks(cfg: ExperimentConfig, run: RunDir) -> tuple[list[TaskSpec], list[str]]:
    from demix.data import Manifest

    b = cfg.evaluate.builtin
    manifest = Manifest.load(run)
    for name in sorted(set(b.kinds) - set(manifest.names)):
        raise ConfigError(f"evaluate.builtin.kinds: {name!r} is not a domain ({', '.join(manifest.names)})")
    tasks_dir = run.tasks.resolve()
    key = _suite_key(b, run, manifest, tasks_dir)
    suite_path = tasks_dir / SUITE_FILE
    if stage_done(run.root, STAGE, key) and suite_path.is_file():
        saved = TaskSuite.from_json(read_json(suite_path))
        if all((tasks_dir / f"{s.name}.yaml").is_file() for s in saved.specs):
            return list(saved.specs), list(saved.notes)

    tasks_dir.mkdir(parents=True, exist_ok=True)
    specs: list[TaskSpec] = []
    notes: list[str] = []
    groups = manifest.groups()
    for domain in manifest.names:
        texts = manifest.val_texts(run, domain)
        group = groups.get(domain) or "general"
        scored = b.objective_domains is None or domain in b.objective_domains
        rng = random.Random(f"{b.seed}:{domain}")  # one stream per domain: bits per byte, then accuracy
        searched_bpb: list[str] = []  # documents whose bits per byte the search optimises
        if b.bpb:
            searched_bpb = _bpb_tasks(b, tasks_dir, domain, group, texts, scored, rng, specs, notes)
        if b.accuracy and scored:
            _accuracy_tasks(b, tasks_dir, domain, group, texts, searched_bpb, rng, specs, notes)
    # Remove what an earlier generation left (after writing: a concurrent worker writes the same files).
    keep = {f"{s.name}{ext}" for s in specs for ext in (".yaml", ".jsonl")}
    for old in tasks_dir.glob(f"{PREFIX}*"):
        if old.name not in keep:
            old.unlink(missing_ok=True)
    suite = TaskSuite(tuple(specs), (tasks_dir,), tuple(notes))
    write_json_atomic(suite_path, {**suite.to_json(), "provenance": provenance({"tasks": key})})
    mark_stage_done(run.root, STAGE, key)
    return specs, notes


def _suite_key(b: BuiltinTasksConfig, run: RunDir, manifest: Manifest, tasks_dir: Path) -> str:
    """What the built-in tasks are made from: the generator, its settings and the held-out text."""
    inputs = {
        "generator": GENERATOR_VERSION,
        "builtin": b.model_dump(mode="json"),
        "tasks_dir": str(tasks_dir),
        "domains": [
            {"name": d.name, "group": d.group, "val": hash_file(run.data / d.val_text_path)}
            for d in manifest.domains
            if (run.data / d.val_text_path).is_file()
        ],
    }
    return hash_json(inputs)


def _bpb_tasks(
    b: BuiltinTasksConfig,
    tasks_dir: Path,
    domain: str,
    group: str,
    texts: list[str],
    scored: bool,
    rng: random.Random,
    specs: list[TaskSpec],
    notes: list[str],
) -> list[str]:
    """Write a domain's bits-per-byte task (and its report twin when it counts in the objective).

    Appends to ``specs`` and ``notes``; returns the documents the search optimises (none when bits
    per byte is not in the objective).
    """
    docs = bpb_texts(texts, b.bpb_docs, b.bpb_max_chars, rng)
    name = bpb_task_name(domain)
    _write_bpb(tasks_dir, name, docs)
    objective = b.bpb_objective and scored
    specs.append(TaskSpec(name, group, "bits_per_byte", "lower", "loss", "bpb", domain, objective=objective))
    if not objective:
        return []
    # The search optimises bits per byte on `docs`; the report judges by other documents.
    held = bpb_texts(texts, b.bpb_docs, b.bpb_max_chars, rng, exclude=docs)
    if held:
        _write_bpb(tasks_dir, f"{name}_report", held)
        specs.append(TaskSpec(f"{name}_report", group, "bits_per_byte", "lower", "report", "bpb", domain))
    else:
        notes.append(f"{domain}: no held-out documents left for report bits per byte")
    return docs


def _accuracy_tasks(
    b: BuiltinTasksConfig,
    tasks_dir: Path,
    domain: str,
    group: str,
    texts: list[str],
    searched_bpb: list[str],
    rng: random.Random,
    specs: list[TaskSpec],
    notes: list[str],
) -> None:
    """Write a domain's accuracy tasks (search and report sides); appends to ``specs`` and ``notes``."""
    wanted = b.kinds.get(domain) or default_kind(group)
    kind = choose_kind(wanted, texts)
    if kind != wanted:
        notes.append(f"{domain}: too few held-out documents make {wanted} items; using {kind}")
    for role, ids, n in _accuracy_sides(b, texts, searched_bpb, rng):
        items = BUILDERS[kind](texts, ids, n, rng, n_choices=b.choices, context_chars=b.context_chars)
        name = f"{PREFIX}{kind}_{domain}_{role}"
        if not items:
            notes.append(f"{domain}: no {kind} items for {role} (too little held-out text)")
            continue
        if len(items) < n:
            notes.append(f"{name}: {len(items)} items (asked for {n})")
        _write_jsonl(tasks_dir / f"{name}.jsonl", [it.to_json() for it in items])
        _write_yaml(tasks_dir, name, _choice_yaml(name, tasks_dir / f"{name}.jsonl"))
        metric = b.metric if b.metric != "auto" else ("acc_norm" if kind == "code" else "acc")
        # Report-only accuracy is shown beside the report objective, not counted in it (weight 0).
        weight = 1.0 if b.accuracy_objective else 0.0
        specs.append(TaskSpec(name, group, metric, "higher", role, kind, domain, weight=weight))  # type: ignore[arg-type]


def _bpb_yaml(name: str, data: Path) -> dict[str, Any]:
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "prompt",  # a field name, not a template: lm-eval skips jinja per document
        "doc_to_target": "text",
        "metric_list": [{"metric": "bits_per_byte"}],
        "metadata": {"version": GENERATOR_VERSION, "generated_by": "demix"},
    }


def _accuracy_sides(
    b: BuiltinTasksConfig, texts: list[str], searched_bpb: list[str], rng: random.Random
) -> list[tuple[str, list[int], int]]:
    """(role, held-out document ids, item count) of a domain's accuracy tasks.

    Split into disjoint search and report documents; with ``accuracy_objective: false`` all items
    go to the report, from documents the search does not optimise bits per byte on.
    """
    if not b.accuracy_objective:
        used = set(searched_bpb)
        ids = [i for i, t in enumerate(texts) if not (used and truncate(t, b.bpb_max_chars) in used)]
        return [("report", ids, b.accuracy_docs)]
    search_ids, report_ids = split_docs(len(texts), b.report_fraction, rng)
    n_report = max(1, round(b.accuracy_docs * b.report_fraction))
    return [("search", search_ids, b.accuracy_docs - n_report), ("report", report_ids, n_report)]


def _choice_yaml(name: str, data: Path) -> dict[str, Any]:
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "context",
        "doc_to_choice": "choices",
        "doc_to_target": "label",
        "target_delimiter": "",  # choices carry their own leading space / newline
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": GENERATOR_VERSION, "generated_by": "demix"},
    }


def _write_bpb(tasks_dir: Path, name: str, docs: list[str]) -> None:
    _write_jsonl(tasks_dir / f"{name}.jsonl", [{"text": t, "prompt": ""} for t in docs])
    _write_yaml(tasks_dir, name, _bpb_yaml(name, tasks_dir / f"{name}.jsonl"))


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_yaml(tasks_dir: Path, name: str, body: dict[str, Any]) -> None:
    write_text_atomic(tasks_dir / f"{name}.yaml", yaml.safe_dump(body, sort_keys=False, allow_unicode=True))


__all__ = ["KINDS", "ChoiceItem", "build_tasks", "choose_kind", "default_kind"]
