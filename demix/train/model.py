"""Model construction from the ``model:`` config section, and the FLOP count MFU is measured with.

Models are ordinary Hugging Face causal LMs (Qwen3 or Llama) so every later stage — merge, lm-eval,
export — handles them with stock tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demix.config import ExperimentConfig, ModelConfig
from demix.errors import DemixError
from demix.util.torchenv import quiet_transformers

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from demix.data import Manifest


def _padded(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def hf_config(
    model_cfg: ModelConfig,
    vocab_size: int,
    *,
    bos_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
):
    """The transformers config (``Qwen3Config`` or ``LlamaConfig``) for ``model_cfg``."""
    from transformers import LlamaConfig, Qwen3Config

    head_dim = model_cfg.head_dim or model_cfg.hidden_size // model_cfg.num_heads
    common: dict[str, Any] = dict(
        vocab_size=_padded(vocab_size, model_cfg.pad_vocab_multiple),
        hidden_size=model_cfg.hidden_size,
        num_hidden_layers=model_cfg.num_layers,
        num_attention_heads=model_cfg.num_heads,
        num_key_value_heads=model_cfg.num_kv_heads,
        head_dim=head_dim,
        intermediate_size=model_cfg.intermediate_size,
        max_position_embeddings=model_cfg.max_position_embeddings,
        rope_theta=model_cfg.rope_theta,
        tie_word_embeddings=model_cfg.tie_embeddings,
        initializer_range=model_cfg.init_std,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        attention_dropout=0.0,
        use_cache=False,
    )
    cls = Qwen3Config if model_cfg.family == "qwen3" else LlamaConfig
    return cls(**common)


def build_model(model_cfg: ModelConfig, vocab: int | Manifest, seed: int = 0) -> PreTrainedModel:
    """A freshly initialised causal LM (fp32, on CPU, SDPA attention).

    Args:
        model_cfg: the ``model:`` section.
        vocab: the tokenizer's vocabulary size, or the run's manifest (which also gives bos/eos/pad).
        seed: the same seed gives the same initial weights.

    Returns:
        A ``Qwen3ForCausalLM`` or ``LlamaForCausalLM`` with tied embeddings when configured.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if isinstance(vocab, int):
        config = hf_config(model_cfg, vocab)
    else:
        config = hf_config(
            model_cfg, vocab.vocab_size, bos_id=vocab.bos_id, eos_id=vocab.eos_id, pad_id=vocab.pad_id
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    return model


@dataclass(frozen=True)
class ModelShape:
    """Sizes that determine a model's cost: parameters with and without embeddings, and attention."""

    params: int  # unique parameters (tied embeddings counted once)
    non_embedding: int  # N in the PaLM formula: without the token embedding (and untied LM head)
    layers: int
    heads: int
    head_dim: int

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token, PaLM appendix B: 6N + 12·L·H·Q·T."""
        return 6.0 * self.non_embedding + 12.0 * self.layers * self.heads * self.head_dim * seq_len


def model_shape(model: PreTrainedModel) -> ModelShape:
    """Measure a model's :class:`ModelShape` from its parameters and config."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    emb: torch.Tensor = model.get_input_embeddings().weight  # type: ignore[assignment]
    embedding = emb.numel()
    head = model.get_output_embeddings()
    if head is not None and head.weight is not emb:
        embedding += head.weight.numel()  # an untied LM head is an embedding too
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return ModelShape(total, total - embedding, c.num_hidden_layers, c.num_attention_heads, head_dim)


def load_init(init: Path | None, cfg: ExperimentConfig, manifest: Manifest) -> Any:
    """A job's starting model in fp32: a fresh seeded init, or the HF checkpoint ``init``."""
    import torch
    from transformers import AutoModelForCausalLM

    if init is None:
        return build_model(cfg.model, manifest, seed=cfg.train.seed)
    try:
        with quiet_transformers():
            return AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32, attn_implementation="sdpa")
    except (OSError, ValueError) as e:
        raise DemixError(f"cannot load the initial checkpoint: {e}", path=init) from None
