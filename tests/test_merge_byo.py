"""Bring-your-own components: tiny random models of six architectures saved by transformers merge by
the model's own parameter names, and bad inputs are refused up front with the culprit and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from demix.errors import DemixError
from demix.merge import MergeEngine, check_tokenizer

TINY: dict[str, dict[str, Any]] = {  # ~30K-parameter models; token ids inside the 256 vocabulary
    "gpt2": dict(n_embd=32, n_layer=2, n_head=2, n_positions=64),
    "gpt_neox": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=64),
    "llama": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2),
    "qwen3": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8, tie_word_embeddings=True),
    "phi3": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64),
    "opt": dict(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=2,
                word_embed_proj_dim=32, max_position_embeddings=64),
}  # fmt: skip


def tiny(arch: str, seed: int, **overrides: Any) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(arch, vocab_size=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                               **{**TINY[arch], **overrides})  # fmt: skip
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # norms start as ones and biases as zeros: make every tensor differ
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def save_tiny(root: Path, arch: str, n: int, *, dtype: torch.dtype = torch.float32, shard: str | None = None,
              **overrides: Any) -> list[Path]:  # fmt: skip
    dirs = []
    for i in range(n):
        d = root / f"{arch}{i}"
        kw = {"max_shard_size": shard} if shard else {}
        tiny(arch, i, **overrides).to(dtype).save_pretrained(d, **kw)
        dirs.append(d)
    return dirs


def loaded(path: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).eval()


def assert_fp64_average(engine: MergeEngine, dirs: list[Path], w: list[float]) -> None:
    sds = [loaded(d).state_dict() for d in dirs]
    wn = np.asarray(w, dtype=np.float64) / sum(w)
    got = engine.state_dict()
    assert got, "nothing merged"
    for k, v in got.items():
        exp = sum(float(wi) * sd[k].double() for wi, sd in zip(wn, sds, strict=True))
        torch.testing.assert_close(v.double(), exp, rtol=0, atol=1e-6, msg=k)


CASES = [
    ("gpt2", torch.float32, None),
    ("gpt_neox", torch.float32, None),
    ("llama", torch.float32, "40KB"),  # sharded: model.safetensors.index.json
    ("qwen3", torch.bfloat16, None),
    ("phi3", torch.float32, None),
    ("opt", torch.float32, None),
]


@pytest.mark.parametrize(("arch", "dtype", "shard"), CASES, ids=[c[0] for c in CASES])
def test_architectures_merge_to_the_fp64_average(tmp_path: Path, arch: str, dtype: torch.dtype,
                                                 shard: str | None) -> None:  # fmt: skip
    n = 3 if arch in ("llama", "gpt_neox") else 2
    dirs = save_tiny(tmp_path, arch, n, dtype=dtype, shard=shard)
    if shard:
        assert (dirs[0] / "model.safetensors.index.json").is_file()
    if arch == "gpt_neox":  # transformers stores the head as embed_out and renames it on load
        with safe_open(str(dirs[0] / "model.safetensors"), framework="pt") as f:
            assert "embed_out.weight" in set(f.keys())
    w = [0.2, 0.3, 0.5][:n]
    engine = MergeEngine.from_checkpoints(dirs, device="cpu", dtype="float32", compile=False)
    engine.merge(w)
    assert_fp64_average(engine, dirs, w)

    ids = torch.randint(3, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        live = engine.model(ids).logits
        exported = loaded(engine.save(tmp_path / "proxy"))(ids).logits
    torch.testing.assert_close(live, exported, rtol=0, atol=0)


def test_gpt2_without_the_transformer_prefix_merges(tmp_path: Path) -> None:
    dirs = []
    for i in range(2):
        model = tiny("gpt2", i)
        d = tmp_path / f"bare{i}"
        d.mkdir()
        model.config.save_pretrained(d)
        sd = {
            k.removeprefix("transformer."): v.contiguous()
            for k, v in model.state_dict().items()
            if k != "lm_head.weight"
        }  # fmt: skip  (GPT2Model's names; the head is tied)
        assert not any(k.startswith("transformer.") for k in sd)
        save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
        dirs.append(d)
    engine = MergeEngine.from_checkpoints(dirs, device="cpu", compile=False)
    engine.merge([0.25, 0.75])
    assert_fp64_average(engine, dirs, [0.25, 0.75])
    assert engine.model.lm_head.weight is engine.model.transformer.wte.weight  # tied, merged once


def test_config_mismatch_lists_every_key(tmp_path: Path) -> None:
    a = save_tiny(tmp_path / "a", "llama", 1)[0]
    b = save_tiny(tmp_path / "b", "llama", 1, rope_theta=500000.0, rms_norm_eps=1e-5)[0]
    with pytest.raises(DemixError, match="rope_theta") as e:
        MergeEngine.from_checkpoints([a, b], device="cpu")
    msg = str(e.value)
    assert "rms_norm_eps" in msg and "500000.0" in msg and "10000.0" in msg
    assert str(a / "config.json") in msg and str(b / "config.json") in msg
    assert "merge only components of one architecture and config" in msg


def test_bookkeeping_keys_may_differ(tmp_path: Path) -> None:
    dirs = save_tiny(tmp_path, "qwen3", 2)
    cfg = json.loads((dirs[1] / "config.json").read_text())
    cfg.update(
        _name_or_path="elsewhere", transformers_version="4.0.0", architectures=["Other"], use_cache=False
    )
    (dirs[1] / "config.json").write_text(json.dumps(cfg))
    MergeEngine.from_checkpoints(dirs, device="cpu", compile=False)


def test_mixed_dtypes_say_which_setting_resolves_them(tmp_path: Path) -> None:
    a = save_tiny(tmp_path / "a", "opt", 1)[0]
    b = save_tiny(tmp_path / "b", "opt", 1, dtype=torch.bfloat16)[0]
    with pytest.raises(DemixError, match=r"dtype float32 in .* vs bfloat16") as e:
        MergeEngine.from_checkpoints([a, b], device="cpu")
    assert "--set merge.dtype=float32" in str(e.value)
    engine = MergeEngine.from_checkpoints([a, b], device="cpu", dtype="float32", compile=False)
    engine.merge([0.5, 0.5])
    assert_fp64_average(engine, [a, b], [0.5, 0.5])


def _word_tokenizer(root: Path, n: int) -> Path:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel({f"w{i}": i for i in range(n)}, unk_token="w0"))
    tok.pre_tokenizer = Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="w0").save_pretrained(root)
    return root


def test_tokenizer_must_fit_the_embedding(tmp_path: Path) -> None:
    dirs = save_tiny(tmp_path, "gpt2", 2)
    assert check_tokenizer(_word_tokenizer(tmp_path / "ok", 200), dirs[0]) == 200
    big = _word_tokenizer(tmp_path / "big", 300)
    with pytest.raises(DemixError, match="300 tokens but the model's embedding has 256 rows") as e:
        check_tokenizer(big, json.loads((dirs[0] / "config.json").read_text()))
    assert str(big) in str(e.value) and "vocab_size" in str(e.value)
    assert "tokenizer.name_or_path" in str(e.value)
    engine = MergeEngine.from_checkpoints(dirs, device="cpu", compile=False)
    with pytest.raises(DemixError, match="256 rows"):
        engine.save(tmp_path / "proxy", tokenizer_dir=big)
    assert not (tmp_path / "proxy").exists()


def test_bin_checkpoint_is_refused_with_the_conversion(tmp_path: Path) -> None:
    good = save_tiny(tmp_path, "gpt2", 1)[0]
    d = tmp_path / "pickled"
    d.mkdir()
    model = tiny("gpt2", 1)
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    with pytest.raises(DemixError, match=r"pytorch_model\.bin") as e:
        MergeEngine.from_checkpoints([good, d], device="cpu")
    assert "save_pretrained" in str(e.value) and "safe_serialization=True" in str(e.value)
    assert str(d) in str(e.value)


def test_evaluate_refuses_a_tokenizer_past_the_embedding(tmp_path: Path) -> None:
    from demix.config import EvalConfig
    from demix.evaluate import load_checkpoint

    (d,) = save_tiny(tmp_path, "gpt2", 1)
    big = _word_tokenizer(tmp_path / "big", 300)
    with pytest.raises(DemixError) as e:
        load_checkpoint(d, EvalConfig(device="cpu"), tokenizer_dir=big)
    assert str(big) in str(e.value) and "vocab" in str(e.value)


def _vocab_tokenizer(root: Path, vocab: dict[str, int], *, extra: list[str] | None = None) -> Path:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="w0", eos_token="w2")
    if extra:
        fast.add_special_tokens({"additional_special_tokens": extra})
    fast.save_pretrained(root)
    return root


def test_components_with_another_vocabulary_are_named(tmp_path: Path) -> None:
    from demix.merge import vocabulary_mismatches

    words = {f"w{i}": i for i in range(200)}
    run_tok = _vocab_tokenizer(tmp_path / "run_tok", words)
    same = _vocab_tokenizer(tmp_path / "same", words)
    padded = _vocab_tokenizer(tmp_path / "padded", words, extra=["<pad>"])  # a token added on top
    swapped = _vocab_tokenizer(tmp_path / "swapped", {**words, "w7": 8, "w8": 7})
    bare = tmp_path / "bare"
    bare.mkdir()  # no tokenizer files: the run's is used
    got = vocabulary_mismatches(run_tok, {"a": same, "b": padded, "c": swapped, "d": bare, "e": run_tok})
    assert list(got) == ["c"], got
    assert "token 'w7' is id 7 in the run's and id 8 in this one" in got["c"] and str(swapped) in got["c"]
    smaller = _vocab_tokenizer(tmp_path / "smaller", {f"w{i}": i for i in range(100)})
    assert (
        "token 'w100' is id 100 in the run's and missing in this one"
        in vocabulary_mismatches(run_tok, {"s": smaller})["s"]
    )


def test_config_validate_names_the_component_with_another_vocabulary(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.byo_tree import VOCAB, make_byo_tree

    root = make_byo_tree(tmp_path, "gpt2")
    code = root / "checkpoints" / "code"
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (code / f).unlink(missing_ok=True)
    _vocab_tokenizer(code, {**{f"w{i}": i for i in range(VOCAB)}, "w3": 4, "w4": 3})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "demix", "config", "validate", "configs/byo.yaml"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "components.candidates.code.path: its tokenizer" in r.stderr and "token 'w3' is id 3" in r.stderr
    assert "components.candidates.web.path" not in r.stderr and "math.path" not in r.stderr
