"""Reading component checkpoints: config.json and the safetensors index of one HF checkpoint.

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


_BIN_HINT = """pickled PyTorch weights (pytorch_model.bin) are not read: only safetensors checkpoints can
be merged (memory-mapped, no code run on load). Convert it once with transformers:
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained("{root}")
    m.save_pretrained("{root}-safetensors", safe_serialization=True)
and point demix at {root}-safetensors (copy the tokenizer files too)"""


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
    elif any(root.glob("pytorch_model*.bin")) or any(root.glob("*.pt")):
        raise DemixError(_BIN_HINT.format(root=root), path=root)
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
