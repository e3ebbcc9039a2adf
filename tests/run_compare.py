"""Compare two run directories file by file, masking only what legitimately differs between two runs
of one config: when it ran and how long it took, and where the run lives.

- JSON (and JSON lines, and YAML): parsed, then keys naming a time (``created``, ``finished``, ``started``) or
  a duration or a speed (``*_s``, ``*_seconds``, ``seconds``, ``*_per_s``, ``mfu``) are dropped, and the run's path is
  replaced by ``<RUN>``.
- CSV: parsed, duration columns (``*_s``: ``merge_s``, ``eval_s``) dropped. ``search/trials.csv``:
  its COMPLETE rows without the trial number: a run killed mid-trial records that trial as FAIL
  and scores its ticket again under a new number, with the same weights and the same scores.
- Markdown / HTML / YAML / text: the run's path and ``YYYY-MM-DD HH:MM[:SS]`` stamps replaced.
- Everything else (token files, safetensors, tokenizer, plots, the .npy hashes): byte for byte.
- ``provenance.inputs`` (hashes of the files a stage read) is dropped: each of those files is
  compared itself, and two of them legitimately differ in bytes between two runs: ``trials.csv``
  in its timing columns and the task suite in the run's own path (its files name their data by
  absolute path).
- Not compared: ``search/study.db*`` (SQLite pages hold the wall-clock times of each trial; its
  trials are compared through ``search/trials.csv``), the run lock, ``superseded/``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import yaml

# What each stage writes (prefixes relative to the run; plus .stages/<stage>.json).
OUTPUTS = {
    "prepare": ("data/",),
    "train-base": ("models/base/",),
    "train-components": ("models/components/",),
    "search": ("search/", "tasks/"),
    "law": ("law/",),
    "recommend": ("export/recommendation.json",),
    "export": ("export/",),
    "report": ("report/",),
}
_SKIP = re.compile(r"^(search/study\.db.*|\.lock.*|superseded/.*|\.built-.*|\.lock-.*)$")
_TIME_KEY = re.compile(r"^(created|finished|started|seconds|mfu|.*_s|.*_seconds|.*_per_s|.*_per_sec)$")
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{4}|Z)?")
_TEXT = (".md", ".html", ".yaml", ".yml", ".txt", ".py", ".log")


def _files(root: Path, stages: tuple[str, ...]) -> set[str]:
    prefixes = tuple(p for s in stages for p in OUTPUTS[s]) + tuple(f".stages/{s}.json" for s in stages)
    out = set()
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not _SKIP.match(rel) and rel.startswith(prefixes):
            out.add(rel)
    return out


def _mask_json(x: Any, roots: tuple[str, ...]) -> Any:
    if isinstance(x, dict):
        return {k: _mask_json(v, roots) for k, v in x.items() if not _TIME_KEY.match(str(k))}
    if isinstance(x, list):
        return [_mask_json(v, roots) for v in x]
    if isinstance(x, str):
        return _mask_text(x, roots)
    return x


def _mask_text(s: str, roots: tuple[str, ...]) -> str:
    for r in roots:
        s = s.replace(r, "<RUN>")
    return _STAMP.sub("<TIME>", s)


def normalized(path: Path, *roots: Path) -> Any:
    """What of ``path`` two runs must agree on; ``roots``: the run directories (masked as ``<RUN>``;
    a file copied from one run names the other)."""
    roots = tuple(dict.fromkeys(str(p) for r in roots for p in (r.resolve(), r)))
    if path.suffix in (".json", ".yaml", ".yml"):
        text = path.read_text()
        doc = _mask_json(json.loads(text) if path.suffix == ".json" else yaml.safe_load(text), roots)
        if isinstance(doc, dict) and isinstance(doc.get("provenance"), dict):
            doc["provenance"].pop("inputs", None)
        return doc
    if path.suffix == ".jsonl":
        return [_mask_json(json.loads(ln), roots) for ln in path.read_text().splitlines() if ln.strip()]
    if path.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        if path.name == "trials.csv":  # a trial killed mid-way: FAIL, its ticket scored again later
            return [{k: v for k, v in r.items() if not _TIME_KEY.match(k) and k != "trial"}
                    for r in rows if r.get("state") == "COMPLETE"]  # fmt: skip
        return [{k: v for k, v in r.items() if not _TIME_KEY.match(k)} for r in rows]
    if path.suffix in _TEXT:
        return _mask_text(path.read_text(), roots)
    return path.read_bytes()


def differences(ref: Path, run: Path, stages: tuple[str, ...]) -> list[str]:
    """Every file of ``stages``' outputs that one run has and the other lacks, or that differs."""
    a, b = _files(ref, stages), _files(run, stages)
    out = [f"only in the reference: {p}" for p in sorted(a - b)]
    out += [f"only in {run}: {p}" for p in sorted(b - a)]
    for rel in sorted(a & b):
        if normalized(ref / rel, ref, run) != normalized(run / rel, ref, run):
            out.append(f"differs: {rel}")
    return out
