"""Checks made before anything is loaded or written: the components compute the same function of
their weights (configs), they are stored in one dtype (or the user chose one), a tokenizer fits
the model's embedding, and the components' own tokenizers give its tokens the same ids.

Each problem is one :class:`~demix.errors.DemixError` (exit 2 at the CLI) that names the file, the
key and what to do.

Config keys that do not change what the merged model computes are not compared
(:data:`IGNORED_KEYS`): bookkeeping (``_name_or_path``, ``transformers_version``, ``_commit_hash``),
the storage dtype (``torch_dtype`` / ``dtype``: checked tensor by tensor instead), ``architectures``
(the model is built from ``model_type``), output switches (``use_cache``, ``return_dict``,
``output_*``), classification labels, ``initializer_range`` (weights are loaded, never initialised)
and dropout rates (the merged model only runs in eval mode). Every other key must agree; nested
dicts (``rope_parameters``, ``rope_scaling``) are compared key by key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demix.errors import DemixError
from demix.merge.checkpoint import Checkpoint

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from demix.merge.names import NamePlan

IGNORED_KEYS = frozenset(
    {
        "_name_or_path",
        "transformers_version",
        "_commit_hash",
        "torch_dtype",
        "dtype",
        "architectures",
        "use_cache",
        "return_dict",
        "output_attentions",
        "output_hidden_states",
        "id2label",
        "label2id",
        "problem_type",
        "initializer_range",
        "_attn_implementation_autoset",
    }
)
_DROPOUT = re.compile(r"(dropout|_pdrop)")
_FIX_DTYPE = (
    "set merge.dtype to the dtype to merge in, e.g. `--set merge.dtype=float32` (exact) or "
    "`--set merge.dtype=bfloat16` (half the memory)"
)


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if not prefix and (k in IGNORED_KEYS or _DROPOUT.search(k)):
            continue
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _effective_config(ckpt: Checkpoint) -> dict[str, Any]:
    """config.json with transformers' defaults filled in, so a key written out and one left to its
    default compare equal."""
    from transformers import AutoConfig

    from demix.util.torchenv import quiet_transformers

    try:
        with quiet_transformers(errors_only=True):
            full: dict[str, Any] = AutoConfig.from_pretrained(str(ckpt.root)).to_dict()
    except (ValueError, KeyError, OSError) as e:
        raise DemixError(
            f"cannot read config.json as a transformers config: {e}", path=ckpt.config_path
        ) from None
    return _flat(full)


def check_compatible(checkpoints: list[Checkpoint]) -> None:
    """Every checkpoint's config equals the first one's in every key that changes the computation.

    Raises:
        DemixError: listing each differing key with its value in every component's config.json.
    """
    configs = [_effective_config(c) for c in checkpoints]
    keys = sorted({k for cfg in configs for k in cfg})
    missing = object()
    differ = [k for k in keys if any(cfg.get(k, missing) != configs[0].get(k, missing) for cfg in configs)]
    if not differ:
        return
    parts = []
    for k in differ:
        vals = ", ".join(
            f"{c.get(k, '(unset)')!r} in {ck.config_path}" for c, ck in zip(configs, checkpoints, strict=True)
        )
        parts.append(f"{k}: {vals}")
    raise DemixError(  # one line: the CLI prints errors as one line
        f"components differ in config.json key(s) {'; '.join(parts)}; these change what the merged "
        "model computes: merge only components of one architecture and config"
    )


def check_dtypes(checkpoints: list[Checkpoint], plans: list[NamePlan], dtype: Any) -> None:
    """Components stored in different dtypes merge only when ``merge.dtype`` says which to use.

    Raises:
        DemixError: ``dtype`` is ``auto`` and a tensor's dtype differs between two components (the
            tensor, both files and the ``merge.dtype`` setting that resolves it).
    """
    if dtype not in (None, "auto"):
        return
    ref, ref_plan = checkpoints[0], plans[0]
    for ckpt, plan in zip(checkpoints[1:], plans[1:], strict=True):
        if ref_plan.sources is not None and plan.sources is not None:
            pairs = [
                (ref.tensors[ref_plan.sources[n]], ckpt.tensors[s], n)
                for n, s in plan.sources.items()
                if n in ref_plan.sources
            ]
        else:  # loaded through transformers: compare what each stores
            a = sorted({t.dtype for t in ref.tensors.values()})
            b = sorted({t.dtype for t in ckpt.tensors.values()})
            pairs = (
                []
                if a == b
                else [(ref.tensors[next(iter(ref.tensors))], ckpt.tensors[next(iter(ckpt.tensors))], "")]
            )
        for t, o, name in pairs:
            if t.dtype != o.dtype:
                raise DemixError(
                    f"components are stored in different dtypes: tensor {name!r} has dtype {t.dtype} in "
                    f"{t.file} vs {o.dtype} in {o.file}; {_FIX_DTYPE}"
                )


def _vocab_size(model_config: PretrainedConfig | Mapping[str, Any] | str | Path) -> tuple[int, str]:
    if isinstance(model_config, (str, Path)):
        import json

        path = Path(model_config)
        path = path / "config.json" if path.is_dir() else path
        try:
            model_config = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DemixError(f"cannot read the model config: {e}", path=path) from None
        where = str(path)
    else:
        where = "the model's config.json"
    assert not isinstance(model_config, (str, Path))
    cfg: Any = model_config
    if not isinstance(cfg, Mapping):
        cfg = (cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg).to_dict()
    v = cfg.get("vocab_size", (cfg.get("text_config") or {}).get("vocab_size"))
    if not isinstance(v, int):
        raise DemixError(f"{where} has no integer 'vocab_size'")
    return v, where


def check_tokenizer(
    tokenizer_dir: str | Path, model_config: PretrainedConfig | Mapping[str, Any] | str | Path
) -> int:
    """The tokenizer's ids all index a row of the model's embedding (``len(tokenizer) <= vocab_size``).

    A tokenizer with fewer tokens than the embedding is fine (models pad the vocabulary); one with
    more would make ``evaluate`` and ``search`` index past the embedding.

    Args:
        tokenizer_dir: a directory ``AutoTokenizer.from_pretrained`` loads (a checkpoint or the run's
            tokenizer).
        model_config: the model's config (a ``PretrainedConfig``, the config.json dict, or the
            checkpoint directory / config.json path).

    Returns:
        The tokenizer's size (added tokens included).

    Raises:
        DemixError: the tokenizer cannot be loaded, or has more tokens than ``vocab_size``.
    """
    from transformers import AutoTokenizer

    from demix.util.torchenv import quiet_transformers

    vocab, where = _vocab_size(model_config)
    try:
        with quiet_transformers(errors_only=True):
            n = len(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    except (OSError, ValueError, TypeError) as e:
        raise DemixError(f"cannot load a tokenizer: {e}", path=tokenizer_dir) from None
    if n > vocab:
        raise DemixError(
            f"tokenizer has {n} tokens but the model's embedding has {vocab} rows (key 'vocab_size' in "
            f"{where}): token ids {vocab}..{n - 1} index past it. Use the tokenizer the components were "
            "trained with: tokenizer.kind=pretrained with tokenizer.name_or_path set to a component "
            "directory (or a directory holding that tokenizer)",
            path=tokenizer_dir,
        )
    return n


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def _vocabulary(tokenizer_dir: Path) -> tuple[dict[str, int], set[str]]:
    """token -> id of a tokenizer, and its added tokens (specials a trainer may add freely)."""
    from transformers import AutoTokenizer

    from demix.util.torchenv import quiet_transformers

    try:
        with quiet_transformers(errors_only=True):
            tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    except (OSError, ValueError, TypeError) as e:
        raise DemixError(f"cannot load a tokenizer: {e}", path=tokenizer_dir) from None
    return dict(tok.get_vocab()), set(tok.get_added_vocab())


def vocabulary_mismatches(tokenizer_dir: str | Path, checkpoints: Mapping[str, str | Path]) -> dict[str, str]:
    """The checkpoints whose own tokenizer gives a token of the run's tokenizer another id (name -> why).

    Averaging rows of embeddings is only meaningful when row i is the same token in every component:
    a component trained with another vocabulary (a retrained or re-ordered tokenizer of the same
    size passes every config check) merges into noise without an error. Every id the run's tokenizer
    writes must therefore name the same token in each checkpoint that ships a tokenizer; tokens
    added on top (a pad or chat token one trainer added) are not compared. Checkpoints without
    tokenizer files, or with files identical to the run's, are not loaded.

    Raises:
        DemixError: a tokenizer cannot be loaded.
    """
    ref_dir = Path(tokenizer_dir)
    ref: tuple[dict[str, int], set[str]] | None = None
    out: dict[str, str] = {}
    for name, root in checkpoints.items():
        root = Path(root)
        files = [f for f in _TOKENIZER_FILES if (root / f).is_file()]
        if not files or root.resolve() == ref_dir.resolve():
            continue
        if all(
            (ref_dir / f).is_file() and (ref_dir / f).read_bytes() == (root / f).read_bytes() for f in files
        ):
            continue
        ref = ref or _vocabulary(ref_dir)
        vocab, _ = _vocabulary(root)
        for token, i in sorted(ref[0].items(), key=lambda kv: kv[1]):  # the lowest id first
            if token not in ref[1] and vocab.get(token) != i:
                there = "missing" if token not in vocab else f"id {vocab[token]}"
                out[name] = (
                    f"its tokenizer ({root}) is not the run's ({ref_dir}): token {token!r} is id {i} in "
                    f"the run's and {there} in this one. Components trained with different vocabularies "
                    "cannot be averaged; use components trained with one tokenizer"
                )
                break
    return out
