"""Every export format, rendered from one recommended-mixture document (pure: dict in, text out).

The document (``recommended_mixture.json``, schema :data:`demix.export.plan.SCHEMA`) holds data
ratios r summing to 1, tokens per source, epochs, the merge weights the ratios came from and
provenance; YAML, CSV, the Megatron-LM blend, the Hugging Face snippet and the markdown summary are
views of it. Formats are a registry: name -> (file name, renderer).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from demix.config.base import format_count

Doc = dict[str, Any]


def _json(doc: Doc) -> str:
    return json.dumps(doc, indent=2, default=str) + "\n"


def _yaml(doc: Doc) -> str:
    import yaml

    head = f"# {doc['schema']}: data ratios r (not merge weights) for {doc['name']}; see recommended_mixture.md\n"
    return head + yaml.safe_dump(json.loads(json.dumps(doc, default=str)), sort_keys=False, width=120)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _csv(doc: Doc) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["domain", "ratio", "tokens", "available_tokens", "epochs", "merge_weight", "ratio_low", "ratio_high"]
    )
    for d in doc["domains"]:
        iv = (doc.get("interval") or {}).get(d) or [None, None]
        w.writerow(
            [
                d,
                _cell(doc["ratios"][d]),
                _cell(doc["tokens"][d]),
                _cell((doc.get("available_tokens") or {}).get(d)),
                _cell((doc.get("epochs") or {}).get(d)),
                _cell((doc.get("merge_weights") or {}).get(d)),
                _cell(iv[0]),
                _cell(iv[1]),
            ]
        )
    return buf.getvalue()


def _megatron(doc: Doc) -> str:
    prefix = doc.get("megatron_prefix") or "{domain}_text_document"
    parts = []
    for d in doc["domains"]:
        if doc["ratios"][d] > 0:
            parts.append(f"{doc['ratios'][d]:.6f} {prefix.format(domain=d)}")
    lines = [
        f"# Megatron-LM data blend for {doc['name']} ({doc['schema']}): data ratios r as blend weights.",
        "# Replace the path prefixes with your preprocessed .bin/.idx prefixes (tools/preprocess_data.py).",
        f"# Target: --train-samples so that seq_len * samples ~= {format_count(doc['target_tokens'])} tokens.",
        "--data-path " + " ".join(parts),
    ]
    return "\n".join(lines) + "\n"


def _hf(doc: Doc) -> str:
    """A ``datasets`` snippet that streams the mixture. ``interleave_datasets`` draws documents, not
    tokens, so each source's probability is its ratio over its mean document length: drawn with the
    ratios themselves, a source of long documents would take more than its share (20x apart on the
    demo's sources)."""
    names = [d for d in doc["domains"] if doc["ratios"][d] > 0]
    sources = doc.get("sources") or {}
    lengths = doc.get("tokens_per_document") or {}
    src_lines = [f"  {d}: {', '.join(sources.get(d) or ['(unknown)'])}" for d in names]
    loads = "\n".join(
        f'    "{d}": load_dataset("json", data_files="{d}/*.jsonl", split="train", streaming=True),'
        for d in names
    )
    ratios = "\n".join(f'    "{d}": {doc["ratios"][d]:.6f},' for d in names)
    per_doc = "\n".join(f'    "{d}": {lengths.get(d)!r},' for d in names)
    return (
        f'"""Recommended mixture for {doc["name"]} ({doc["schema"]}, choice: {doc["choice"]}).\n\n'
        "Data ratios r (not merge weights); demix's sources were:\n"
        + "\n".join(src_lines)
        + "\nPoint each load_dataset at your copy of that source.\n\n"
        "interleave_datasets draws documents, not tokens: each source is drawn with probability\n"
        "ratio / mean tokens per document, so that its share of the tokens is its ratio. The lengths\n"
        "are demix's measurements of its copies with its tokenizer (None: not measured); for exact\n"
        "shares under your tokenizer, put in your copies' means in its tokens.\n"
        '"""\n\n'
        "from datasets import interleave_datasets, load_dataset\n\n"
        "sources = {\n" + loads + "\n}\n"
        "ratios = {  # each source's share of the training tokens\n" + ratios + "\n}\n"
        "tokens_per_document = {  # mean tokens per document of each source\n" + per_doc + "\n}\n"
        "if None in tokens_per_document.values():\n"
        '    raise SystemExit("set tokens_per_document for every source: documents are drawn, not tokens")\n'
        "weights = {d: r / tokens_per_document[d] for d, r in ratios.items()}\n"
        "probabilities = [weights[d] / sum(weights.values()) for d in ratios]\n"
        "mixture = interleave_datasets(\n"
        "    [sources[d] for d in ratios],\n"
        "    probabilities=probabilities,\n"
        "    seed=0,\n"
        '    stopping_strategy="all_exhausted",  # a source that runs out starts again (epochs > 1)\n'
        ")\n"
        f"# The stream ends only once every source has run out: stop after the run's "
        f"{format_count(doc['target_tokens'])} tokens.\n"
    )


def _markdown(doc: Doc) -> str:
    lines = [
        f"# Recommended data mixture: {doc['name']}",
        "",
        f"Train on these **data ratios** (`{doc['schema']}`), chosen by `{doc['choice']}`. They are not the "
        f"merge weights the search used: components were trained on {1 - doc['beta']:g}·candidate + "
        f"{doc['beta']:g}·{doc['general']}, so merge weights w stand for r = {doc['beta']:g}·{doc['general']} + "
        f"{1 - doc['beta']:g}·w.",
        "",
        f"Target run: **{format_count(doc['target_tokens'])} tokens**.",
        "",
        "| source | ratio | 95% interval | tokens | available | epochs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for d in doc["domains"]:
        iv = (doc.get("interval") or {}).get(d)
        avail = (doc.get("available_tokens") or {}).get(d)
        ep = (doc.get("epochs") or {}).get(d)
        lines.append(
            f"| {d} | {doc['ratios'][d]:.4f} | {f'{iv[0]:.3f}–{iv[1]:.3f}' if iv else '—'} | "
            f"{format_count(doc['tokens'][d])} | {format_count(avail) if avail is not None else '—'} | "
            f"{f'{ep:.3g}' if ep is not None else '—'} |"
        )
    pred = doc.get("predicted") or {}
    if pred:
        lines += ["", "Predicted: " + ", ".join(f"{k} {v:.4f}" for k, v in pred.items()) + "."]
    alts = doc.get("alternatives") or {}
    if alts:
        lines += ["", "Alternatives (data ratios):", ""]
        for name, a in alts.items():
            shares = ", ".join(f"{d} {a['r'][d]:.3f}" for d in doc["domains"])
            lines.append(f"- `{name}`: {shares}")
    if doc.get("warnings"):
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in doc["warnings"]]
    lines += [
        "",
        f"Epochs above {doc['max_epochs']:g} get a warning (export.max_epochs). Files: "
        "recommended_mixture.{json,yaml,csv}, megatron_data_blend.txt (blend weights are the ratios: "
        "Megatron draws fixed-length samples), hf_interleave.py (it draws documents, so each source's "
        "probability is its ratio over its mean document length).",
    ]
    return "\n".join(lines) + "\n"


FORMATS: dict[str, tuple[str, Callable[[Doc], str]]] = {
    "json": ("recommended_mixture.json", _json),
    "yaml": ("recommended_mixture.yaml", _yaml),
    "csv": ("recommended_mixture.csv", _csv),
    "megatron": ("megatron_data_blend.txt", _megatron),
    "hf": ("hf_interleave.py", _hf),
    "markdown": ("recommended_mixture.md", _markdown),
}


def render(doc: Doc, fmt: str) -> tuple[str, str]:
    """(file name, text) of one format."""
    name, fn = FORMATS[fmt]
    return name, fn(doc)
