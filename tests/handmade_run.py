"""Helpers for the evaluate tests (no tests here): a hand-written prepared run and tiny real models.

Until the session's ``trained_run`` fixture exists everywhere, evaluation is developed against this:
held-out text from the built-in demo domains, a byte-level BPE trained on it, and tiny Qwen3 models.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from demix.config import ExperimentConfig, load_config
from demix.data import DomainInfo, Manifest
from demix.run import RunDir

TESTS = Path(__file__).resolve().parent
DOMAINS = (("prose", "general"), ("code", "code"), ("math", "math"))


def held_out(name: str, max_bytes: int = 40_000) -> list[str]:
    return list(_held_out(name, max_bytes))


@functools.cache
def _held_out(name: str, max_bytes: int) -> tuple[str, ...]:
    from demix.corpora.builtin import build_builtin

    return tuple(build_builtin(name, max_bytes=max_bytes, seed=7))


def make_run(root: Path, *overrides: str, max_bytes: int = 40_000) -> tuple[ExperimentConfig, RunDir]:
    """A run directory with a manifest and held-out texts (no token files: evaluation needs none)."""
    root.mkdir(parents=True, exist_ok=True)
    run = RunDir(root)
    run.data.mkdir(parents=True, exist_ok=True)
    infos = []
    for name, group in DOMAINS:
        texts = held_out(name, max_bytes)
        path = run.data / name / "val.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        nbytes = sum(len(t.encode()) for t in texts)
        infos.append(
            DomainInfo(
                name=name,
                group=group,
                sources=[f"builtin:{name}"],
                train_docs=0,
                val_docs=len(texts),
                train_tokens=1000,
                val_tokens=nbytes // 3,
                train_bytes=0,
                val_bytes=nbytes,
                train_path=f"{name}/train.bin",
                val_path=f"{name}/val.bin",
                val_text_path=f"{name}/val.jsonl",
                content_hash=name,
            )
        )
    Manifest(
        general="prose", dtype="uint16", vocab_size=512, eos_id=0, tokenizer_hash="t", domains=infos
    ).save(run)
    cfg_path = root / "config.yaml"
    cfg_path.write_text(
        "name: evaltest\n"
        "corpora:\n  general: prose\n  candidates:\n"
        + "".join(f"    - {{name: {n}, group: {g}, sources: [{{builtin: {n}}}]}}\n" for n, g in DOMAINS)
        + "model: {max_position_embeddings: 128}\ntrain: {seq_len: 64}\n"
        "evaluate:\n  batch_size: 32\n  builtin: {bpb_docs: 8, accuracy_docs: 40, context_chars: 300}\n"
    )
    cfg = load_config(cfg_path, [f"run_dir={root}", *overrides])
    return cfg, run


def tiny_tokenizer(texts: list[str], vocab_size: int = 512) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    eos = "<|endoftext|>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eos, eos_token=eos, pad_token=eos)


def tiny_model(vocab_size: int = 512, seed: int = 0) -> Any:
    import torch
    import transformers

    cfg = transformers.Qwen3Config(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=128, head_dim=8, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(seed)
    return transformers.Qwen3ForCausalLM(cfg).eval()


def train_briefly(
    model: Any, tokenizer: Any, texts: list[str], steps: int = 60, seq: int = 64, lr: float = 3e-3
) -> Any:
    """A few hundred steps of next-token training on ``texts``: enough to move a tiny model."""
    import torch

    ids = [i for t in texts for i in [*tokenizer.encode(t), tokenizer.eos_token_id]]
    data = torch.tensor(ids[: (len(ids) // seq) * seq]).view(-1, seq)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        batch = data[torch.randint(0, len(data), (16,), generator=g)]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()
