"""The run's tokenizer: a byte-level BPE trained on the candidates, or any Hugging Face tokenizer.

Saved under ``data/tokenizer/`` as a ``PreTrainedTokenizerFast`` (``tokenizer.json`` plus config), so
checkpoints carry it and lm-eval loads it like any other. ``<|endoftext|>`` is both EOS and BOS: every
document is followed by it in the token files, so "what follows EOS" is exactly "a document starts",
which is what lm-eval assumes when it prefixes a rolling-loglikelihood window with BOS. ``<|pad|>`` is
a separate token so padding masks never hide a real EOS.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from demix.config import TokenizerConfig
from demix.errors import DataError
from demix.run import RunDir
from demix.util.io import atomic_dir
from demix.util.torchenv import quiet_transformers

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def train_bpe(texts: Iterable[str], cfg: TokenizerConfig) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` (no ``<unk>``: every byte sequence is representable)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=PAD)


def load_pretrained(cfg: TokenizerConfig) -> PreTrainedTokenizerBase:
    """Load ``tokenizer.name_or_path``; add a pad token (= EOS) when the tokenizer has none.

    Raises:
        DataError: it cannot be loaded, or it has no EOS token to separate documents with.
    """
    from transformers import AutoTokenizer

    assert cfg.name_or_path is not None
    try:
        tok = AutoTokenizer.from_pretrained(cfg.name_or_path)
    except Exception as e:  # not found, offline, malformed: the user's to fix
        first = (str(e).strip().splitlines() or [""])[0]
        raise DataError(f"tokenizer.name_or_path: cannot load {cfg.name_or_path!r}: {first}") from None
    if tok.eos_token_id is None:
        raise DataError(
            f"tokenizer.name_or_path: {cfg.name_or_path!r} has no EOS token to end documents with"
        )
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def save_tokenizer(tok: PreTrainedTokenizerBase, out: Path) -> None:
    """Write the tokenizer to ``out`` atomically (a sibling temp dir renamed into place)."""
    with atomic_dir(out) as tmp:
        tok.save_pretrained(str(tmp))


def load_tokenizer(run: RunDir) -> PreTrainedTokenizerBase:
    """The tokenizer ``demix prepare`` saved in the run (has bos/eos/pad set).

    Raises:
        StageError: prepare has not run yet.
    """
    from transformers import AutoTokenizer

    from demix.errors import StageError

    if not (run.tokenizer / "tokenizer_config.json").is_file():
        raise StageError(f"no tokenizer at {run.tokenizer}; run `demix prepare` first")
    with quiet_transformers(errors_only=True):
        tok = AutoTokenizer.from_pretrained(str(run.tokenizer))
    return tok


def sample_texts(texts: Iterable[str], max_bytes: int) -> Iterator[str]:
    """The first ``max_bytes`` (about) of ``texts``: the BPE's share of one candidate."""
    total = 0
    for t in texts:
        if total >= max_bytes:
            return
        total += len(t.encode())
        yield t
