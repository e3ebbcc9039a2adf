"""A bring-your-own-components directory as README "Bring your own components" lays it out.

``checkpoints/{base,web,code,math}`` (tiny random models of one architecture saved by
transformers, each with the same word-level tokenizer), ``heldout/<candidate>.jsonl``,
``tasks/arc_easy_local.{yaml,jsonl}`` (a local multiple-choice benchmark in ARC's format) and
``configs/byo.yaml``, the shipped example. Commands run in that directory use it unchanged.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import torch

from tests.conftest import REPO
from tests.test_merge_byo import tiny

CANDIDATES = ("web", "code", "math")
VOCAB = 256  # the tiny models' embedding rows


def word_tokenizer(out: Path) -> None:
    """A word-level tokenizer over ``w0`` … ``w255`` with pad/BOS/EOS at 0/1/2 (the models' ids)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel({f"w{i}": i for i in range(VOCAB)}, unk_token="w0"))
    tok.pre_tokenizer = Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="w0", pad_token="w0", bos_token="w1", eos_token="w2"
    )
    fast.save_pretrained(out)


def _documents(name: str, n: int) -> list[str]:
    """Each candidate's text draws from its own third of the vocabulary, so proxies differ on it."""
    rng = random.Random(name)
    lo = 3 + CANDIDATES.index(name) * 80
    return [
        " ".join(f"w{rng.randrange(lo, lo + 90)}" for _ in range(rng.randrange(20, 60))) for _ in range(n)
    ]


def _arc_rows(n: int) -> list[dict[str, object]]:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        words = [f"w{rng.randrange(3, VOCAB)}" for _ in range(8)]
        rows.append({
            "id": f"q{i}",
            "question": " ".join(words[:5]),
            "choices": {"text": [*words[5:8], f"w{rng.randrange(3, VOCAB)}"], "label": ["A", "B", "C", "D"]},
            "answerKey": "ABCD"[i % 4],
        })  # fmt: skip
    return rows


def make_byo_tree(
    root: Path, arch: str, *, dtype: torch.dtype = torch.float32, shard: str | None = None
) -> Path:
    """Lay out ``root`` for ``demix run configs/byo.yaml``; returns ``root``."""
    for i, name in enumerate(("base", *CANDIDATES)):
        out = root / "checkpoints" / name
        kw = {"max_shard_size": shard} if shard else {}
        tiny(arch, 10 + i).to(dtype).save_pretrained(out, **kw)
        word_tokenizer(out)
    (root / "heldout").mkdir()
    for name in CANDIDATES:
        lines = "".join(json.dumps({"text": t}) + "\n" for t in _documents(name, 80))
        (root / "heldout" / f"{name}.jsonl").write_text(lines)
    (root / "tasks").mkdir()
    shutil.copy(REPO / "configs" / "tasks" / "arc_easy_local.yaml", root / "tasks")
    rows = "".join(json.dumps(r) + "\n" for r in _arc_rows(40))
    (root / "tasks" / "arc_easy_local.jsonl").write_text(rows)
    (root / "configs").mkdir()
    shutil.copy(REPO / "configs" / "byo.yaml", root / "configs")
    return root
