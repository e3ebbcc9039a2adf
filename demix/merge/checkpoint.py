"""Reading component checkpoints: the safetensors index of one HF checkpoint, and the checks that
K of them can be merged tensor by tensor.

Only headers are read here (``safe_open`` memory-maps the files); tensor data is copied once, later,
into the engine's stacked buffer. Every problem is a :class:`~demix.errors.DemixError` naming the
file at fault, so a user sees one line, never a safetensors traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demix.errors import DemixError

if TYPE_CHECKING:
    import torch

# Keys of config.json that must agree between components (the rest, e.g. torch_dtype or
# transformers_version, may differ without changing what the tensors mean).
_ARCH_KEYS = (
    "architectures",
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "tie_word_embeddings",
)

_ST_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in a checkpoint and what it is."""

    file: Path
    shape: tuple[int, ...]
    dtype: str  # torch dtype name, e.g. "bfloat16"

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass(frozen=True)
class Checkpoint:
    """One HF checkpoint directory: its config.json and the index of its safetensors tensors."""

    root: Path
    config: dict[str, Any]
    tensors: dict[str, TensorInfo]  # in file order

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def files(self) -> list[Path]:
        return sorted({t.file for t in self.tensors.values()})


def open_checkpoint(root: str | Path) -> Checkpoint:
    """Read config.json and the safetensors headers (sharded or not) of one checkpoint directory.

    Raises:
        DemixError: the directory, config.json or the safetensors files are missing, truncated or
            corrupt, or a sharded index names a tensor its shard lacks.
    """
    from safetensors import SafetensorError, safe_open

    root = Path(root)
    if not root.is_dir():
        raise DemixError("checkpoint directory not found", path=root)
    cfg_path = root / "config.json"
    try:
        config = json.loads(cfg_path.read_text())
    except FileNotFoundError:
        raise DemixError("no config.json (not a Hugging Face checkpoint)", path=root) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DemixError(f"config.json is not valid JSON: {e}", path=cfg_path) from None

    index_path = root / "model.safetensors.index.json"
    if index_path.is_file():
        try:
            weight_map: dict[str, str] = json.loads(index_path.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DemixError(f"malformed sharded index: {e}", path=index_path) from None
        files = list(dict.fromkeys(root / f for f in weight_map.values()))
    elif (root / "model.safetensors").is_file():
        weight_map = {}
        files = [root / "model.safetensors"]
    else:
        raise DemixError(
            "no model.safetensors or model.safetensors.index.json (only safetensors checkpoints "
            "can be merged)",
            path=root,
        )

    tensors: dict[str, TensorInfo] = {}
    for file in files:
        if not file.is_file():
            raise DemixError("shard named in model.safetensors.index.json is missing", path=file)
        try:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    sl = f.get_slice(name)
                    st = sl.get_dtype()
                    if st not in _ST_DTYPES:
                        raise DemixError(f"tensor {name!r} has unsupported dtype {st}", path=file)
                    tensors[name] = TensorInfo(file, tuple(int(s) for s in sl.get_shape()), _ST_DTYPES[st])
        except SafetensorError as e:
            raise DemixError(f"truncated or corrupt safetensors file ({e})", path=file) from None
        except OSError as e:
            raise DemixError(f"cannot read safetensors file ({e})", path=file) from None
    for name, shard in weight_map.items():
        if name not in tensors or tensors[name].file != root / shard:
            raise DemixError(f"index names tensor {name!r} in {shard}, which lacks it", path=index_path)
    if not tensors:
        raise DemixError("checkpoint holds no tensors", path=root)
    return Checkpoint(root, config, tensors)


def check_compatible(checkpoints: list[Checkpoint]) -> None:
    """All checkpoints share architecture, tensor names, shapes and dtypes, or raise naming the first
    difference and both files.

    Raises:
        DemixError: the first mismatch found, comparing every checkpoint with the first.
    """
    ref = checkpoints[0]
    for other in checkpoints[1:]:
        for key in _ARCH_KEYS:
            a, b = ref.config.get(key), other.config.get(key)
            if a != b:
                raise DemixError(
                    f"components differ in config.json key {key!r}: {a!r} in {ref.config_path} vs "
                    f"{b!r} in {other.config_path}"
                )
        for name, t in ref.tensors.items():
            o = other.tensors.get(name)
            if o is None:
                raise DemixError(f"tensor {name!r} is in {t.file} but not in {other.root}")
            if o.shape != t.shape:
                raise DemixError(
                    f"tensor {name!r} has shape {list(t.shape)} in {t.file} vs {list(o.shape)} in {o.file}"
                )
            if o.dtype != t.dtype:
                raise DemixError(f"tensor {name!r} has dtype {t.dtype} in {t.file} vs {o.dtype} in {o.file}")
        extra = [n for n in other.tensors if n not in ref.tensors]
        if extra:
            raise DemixError(
                f"tensor {extra[0]!r} is in {other.tensors[extra[0]].file} but not in {ref.root}"
            )


def read_tensors(ckpt: Checkpoint, names: list[str]) -> Any:
    """Yield ``(name, tensor)`` for ``names``, each read from its memory-mapped file (CPU tensors).

    Files are opened once each; a read error (a file truncated after it was opened) is a DemixError.
    """
    from safetensors import SafetensorError, safe_open

    by_file: dict[Path, list[str]] = {}
    for n in names:
        by_file.setdefault(ckpt.tensors[n].file, []).append(n)
    for file, file_names in by_file.items():
        try:
            with safe_open(str(file), framework="pt") as f:
                for n in file_names:
                    t: torch.Tensor = f.get_tensor(n)
                    yield n, t
        except (SafetensorError, OSError) as e:
            raise DemixError(f"cannot read tensor data ({e})", path=file) from None
