"""Export a merged proxy as an ordinary HF checkpoint (config.json, model.safetensors, tokenizer).

Written with :func:`demix.util.checkpoint.save_hf_checkpoint`: into a temporary directory beside the
target and renamed into place, so an interrupted export never leaves a half-written checkpoint where
``AutoModelForCausalLM.from_pretrained`` would find it. ``demix_merge.json`` beside the weights
records the method, the weights and the components.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demix.errors import DemixError
from demix.merge.checks import check_tokenizer
from demix.util.checkpoint import save_hf_checkpoint, tokenizer_files
from demix.util.hashing import hash_json
from demix.util.io import write_json_atomic
from demix.util.provenance import provenance

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig


def save_checkpoint(
    out_dir: Path,
    *,
    config: PretrainedConfig,
    tensors: Mapping[str, torch.Tensor],
    record: dict[str, Any],
    source: Path,
    tokenizer_dir: Path | None = None,
) -> Path:
    """Write merged tensors to ``out_dir`` as an HF checkpoint (replaced atomically if it exists).

    Args:
        out_dir: the checkpoint directory to write.
        config: the merged model's config (the components').
        tensors: the merged tensors by the model's state-dict names (may be views of one buffer).
        record: what ``demix_merge.json`` says about the merge (method, weights, components, ...);
            its provenance is added here.
        source: the first component's directory: its ``generation_config.json`` is copied, and its
            tokenizer files unless ``tokenizer_dir`` is given.
        tokenizer_dir: where the tokenizer files come from (default: ``source``).

    Returns:
        ``out_dir``.

    Raises:
        DemixError: ``tokenizer_dir`` is given but holds no tokenizer files, or a tokenizer with more
            tokens than the model's ``vocab_size`` (:func:`demix.merge.checks.check_tokenizer`).
    """
    from safetensors.torch import save_file

    tok_files = tokenizer_files(tokenizer_dir if tokenizer_dir is not None else source)
    if tokenizer_dir is not None and not tok_files:
        raise DemixError(
            "no tokenizer files (tokenizer.json, tokenizer_config.json, ...)", path=tokenizer_dir
        )
    if tokenizer_dir is not None:
        check_tokenizer(tokenizer_dir, config)  # a proxy must never be written beside a misfit tokenizer
    gen = source / "generation_config.json"
    files = [gen, *tok_files] if gen.is_file() else tok_files

    def write(tmp: Path) -> None:
        config.save_pretrained(str(tmp))
        # Views share one buffer; safetensors wants separate storages, so each is copied to host.
        host = {n: t.detach().to("cpu", copy=True).contiguous() for n, t in tensors.items()}
        save_file(host, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del host
        info = {**record, "provenance": provenance({"merge": hash_json(record)})}
        write_json_atomic(tmp / "demix_merge.json", info)

    return save_hf_checkpoint(Path(out_dir), write, files=files)
