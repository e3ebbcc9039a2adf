"""The merge engine on tiny real HF models: merged weights equal the hand-computed sums."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from demix.errors import DemixError
from demix.merge import MergeEngine, check_weights

VOCAB = 96


def tiny_model(seed: int, *, tie: bool = True, hidden: int = 32, dtype: torch.dtype = torch.float32):  # type: ignore[no-untyped-def]
    """A random 2-layer Qwen3 causal LM (real transformers model, ~20k parameters)."""
    from transformers import AutoModelForCausalLM, Qwen3Config

    torch.manual_seed(seed)
    cfg = Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        tie_word_embeddings=tie,
        max_position_embeddings=64,
    )
    model = AutoModelForCausalLM.from_config(cfg).to(dtype)
    with torch.no_grad():  # norms are all ones at init; make them differ between components
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def save_components(
    root: Path, n: int, *, tie: bool = True, dtype: torch.dtype = torch.float32, shard: str | None = None
) -> list[Path]:
    dirs = []
    for i in range(n):
        d = root / f"c{i}"
        kw = {"max_shard_size": shard} if shard else {}
        tiny_model(i, tie=tie, dtype=dtype).save_pretrained(d, **kw)
        dirs.append(d)
    return dirs


def state(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {k: v.float() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def hand_sum(dirs: Sequence[Path], w: Sequence[float]) -> dict[str, torch.Tensor]:
    sds = [state(d) for d in dirs]
    return {k: sum(float(wi) * sd[k] for wi, sd in zip(w, sds, strict=True)) for k in sds[0]}  # type: ignore[misc]


def test_linear_equals_hand_sum_in_place(tmp_path: Path) -> None:
    dirs = save_components(tmp_path, 3)
    engine = MergeEngine.from_checkpoints(dirs, device="cpu", backend="torch")
    model = engine.model
    ptrs = {n: p.data_ptr() for n, p in model.named_parameters()}
    engine.merge([1.0, 3.0, 6.0])  # normalised to 0.1, 0.3, 0.6
    expected = hand_sum(dirs, [0.1, 0.3, 0.6])
    got = model.state_dict()
    assert set(got) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(got[k], v, rtol=1e-6, atol=1e-6, msg=k)
    # In place: the same model object, the same storage; every parameter a view of the flat buffer.
    assert engine.model is model
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == ptrs
    lo, hi = engine.flat.data_ptr(), engine.flat.data_ptr() + engine.flat.numel() * engine.flat.element_size()
    assert all(lo <= p.data_ptr() < hi for p in model.parameters())
    # A second merge overwrites the first completely (no leftover of the previous weights).
    engine.merge([0.0, 1.0, 0.0])
    for k, v in state(dirs[1]).items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)
    logits = model(torch.arange(8).view(1, 8)).logits
    assert logits.shape == (1, 8, VOCAB) and torch.isfinite(logits).all()


def test_tied_embeddings_appear_once(tmp_path: Path) -> None:
    dirs = save_components(tmp_path, 2, tie=True)
    engine = MergeEngine.from_checkpoints(dirs, device="cpu")
    names = [s.name for s in engine.layout.slots]
    assert "lm_head.weight" not in names and "model.embed_tokens.weight" in names
    assert engine.model.lm_head.weight is engine.model.model.embed_tokens.weight
    engine.merge([0.25, 0.75])
    torch.testing.assert_close(engine.model.lm_head.weight, hand_sum(dirs, [0.25, 0.75])["lm_head.weight"])


def test_untied_lm_head_merged_separately(tmp_path: Path) -> None:
    dirs = save_components(tmp_path, 2, tie=False)
    engine = MergeEngine.from_checkpoints(dirs, device="cpu")
    assert "lm_head.weight" in [s.name for s in engine.layout.slots]
    engine.merge([0.5, 0.5])
    expected = hand_sum(dirs, [0.5, 0.5])
    assert engine.model.lm_head.weight.data_ptr() != engine.model.model.embed_tokens.weight.data_ptr()
    for k in ("lm_head.weight", "model.embed_tokens.weight"):
        torch.testing.assert_close(engine.model.state_dict()[k], expected[k])


def test_task_arithmetic(tmp_path: Path) -> None:
    dirs = save_components(tmp_path, 3)
    engine = MergeEngine.from_checkpoints(dirs[1:], device="cpu", base=dirs[0])
    w = [0.7, 0.6]  # un-normalised: base + 0.7 (θ1 - base) + 0.6 (θ2 - base)
    engine.merge(w, method="task_arithmetic", normalize=False)
    base, t1, t2 = (state(d) for d in dirs)
    for k in base:
        exp = base[k] + w[0] * (t1[k] - base[k]) + w[1] * (t2[k] - base[k])
        torch.testing.assert_close(engine.model.state_dict()[k], exp, rtol=1e-5, atol=1e-5, msg=k)
    # With the base loaded, linear still ignores it.
    engine.merge([0.5, 0.5])
    torch.testing.assert_close(
        engine.model.state_dict()["model.norm.weight"],
        (t1["model.norm.weight"] + t2["model.norm.weight"]) / 2,
    )


def test_task_arithmetic_needs_base(tmp_path: Path) -> None:
    engine = MergeEngine.from_checkpoints(save_components(tmp_path, 2), device="cpu")
    with pytest.raises(DemixError, match="needs a base model"):
        engine.merge([0.5, 0.5], method="task_arithmetic", normalize=False)


def test_bf16_accumulates_in_fp32(tmp_path: Path) -> None:
    dirs = save_components(tmp_path, 4, dtype=torch.bfloat16)
    engine = MergeEngine.from_checkpoints(dirs, device="cpu", dtype="bfloat16")
    w = [0.1, 0.2, 0.3, 0.4]
    engine.merge(w)
    for k, v in hand_sum(dirs, w).items():  # the fp32 sum of the bf16 inputs, rounded once:
        got = engine.model.state_dict()[k]  # within half a bf16 ulp of it
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.float(), v, rtol=2**-8, atol=1e-6, msg=k)


def test_sharded_checkpoints_load(tmp_path: Path) -> None:
    dirs = save_components(tmp_path, 2, shard="10KB")
    assert (dirs[0] / "model.safetensors.index.json").is_file()
    engine = MergeEngine.from_checkpoints(dirs, device="cpu")
    assert len(engine.checkpoints[0].files) > 1
    engine.merge([0.4, 0.6])
    for k, v in hand_sum(dirs, [0.4, 0.6]).items():
        torch.testing.assert_close(engine.model.state_dict()[k], v, msg=k)


def test_streamed_from_host_matches(tmp_path: Path) -> None:
    dirs = save_components(tmp_path, 3)
    a = MergeEngine.from_checkpoints(dirs, device="cpu")
    b = MergeEngine.from_checkpoints(dirs, device="cpu", stream=True, block=2048)
    assert b.streamed and b.layout.n_blocks > 4
    b.stream_bytes = 2 * 3 * 2048 * 4  # two blocks per staging buffer: several chunks per merge
    assert b._stream is not None and b._stream[1] > 2
    for w in ([0.2, 0.3, 0.5], [1.0, 0.0, 0.0]):
        a.merge(w)
        b.merge(w)
        torch.testing.assert_close(a.flat[: a.numel], b.flat[: b.numel], rtol=1e-6, atol=1e-7)
        assert b._stream[1] == 2


def test_save_roundtrip(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    dirs = save_components(tmp_path, 2)
    engine = MergeEngine.from_checkpoints(dirs, device="cpu")
    engine.merge([0.3, 0.7])
    out = engine.save(tmp_path / "proxy")
    engine.merge([1.0, 0.0])
    out = engine.save(tmp_path / "proxy")  # replaces the previous export atomically
    loaded = AutoModelForCausalLM.from_pretrained(out)
    for k, v in state(dirs[0]).items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".proxy")]


def test_mismatched_components_name_both_files(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    tiny_model(0).save_pretrained(a)
    tiny_model(1, hidden=48).save_pretrained(b)
    with pytest.raises(DemixError, match="hidden_size") as e:
        MergeEngine.from_checkpoints([a, b], device="cpu")
    assert str(a) in str(e.value) and str(b) in str(e.value)
    c = tmp_path / "c"
    tiny_model(2, dtype=torch.bfloat16).save_pretrained(c)
    with pytest.raises(DemixError, match=r"dtype float32 in .* vs bfloat16"):
        MergeEngine.from_checkpoints([a, c], device="cpu")


def test_truncated_file(tmp_path: Path) -> None:
    dirs = save_components(tmp_path, 2)
    f = dirs[1] / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-1000])
    with pytest.raises(DemixError, match="truncated or corrupt") as e:
        MergeEngine.from_checkpoints(dirs, device="cpu")
    assert str(f) in str(e.value)


@pytest.mark.parametrize(
    ("w", "normalize", "message"),
    [
        ([0.5, -0.1], True, "b=-0.1 is negative"),
        ([0.5, float("nan")], True, "b=nan is not finite"),
        ([0.5, float("inf")], True, "b=inf is not finite"),
        ([0.5, 0.2, 0.3], True, "expected 2 values"),
        ([0.0, 0.0], True, "all zero"),
        ([0.5, 0.5], False, "only for task_arithmetic"),
    ],
)
def test_bad_weights(w: list[float], normalize: bool, message: str) -> None:
    with pytest.raises(DemixError, match=message):
        check_weights(w, ["a", "b"], normalize=normalize, method="linear")


def test_weights_normalised() -> None:
    np.testing.assert_allclose(
        check_weights([1, 3], ["a", "b"], normalize=True, method="linear"), [0.25, 0.75]
    )
    np.testing.assert_allclose(
        check_weights([0.0, 0.0], ["a", "b"], normalize=False, method="task_arithmetic"), [0.0, 0.0]
    )


def test_mergekit_method_matches_mergekit(tmp_path: Path) -> None:
    """TIES through mergekit's in-memory API equals mergekit on the same state dicts."""
    from mergekit.merge_methods.api import merge_state_dicts

    dirs = save_components(tmp_path, 3)
    engine = MergeEngine.from_checkpoints(dirs[1:], device="cpu", base=dirs[0], names=["x", "y"])
    engine.merge([0.4, 0.6], method="ties", params={"density": 0.5})
    sds = {n: state(d) for n, d in zip(["__base__", "x", "y"], dirs, strict=True)}
    expected = merge_state_dicts(
        sds,
        "ties",
        parameters={"weight": {"x": 0.4, "y": 0.6}, "density": 0.5},
        base="__base__",
        dtype=torch.float32,
    )
    for k, v in engine.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-5, atol=1e-6, msg=k)


def test_mergekit_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import demix.merge.methods as methods

    monkeypatch.setattr(methods, "mergekit_available", lambda: False)
    with pytest.raises(DemixError, match=r"'ties' needs mergekit"):
        methods.get_method("ties")
    assert methods.get_method("linear").native
    with pytest.raises(DemixError, match="unknown merge method"):
        monkeypatch.undo()
        methods.get_method("no_such_method")


def test_compiled_cpu_path_matches_eager(tmp_path: Path) -> None:
    """The torch.compile-fused sum (the default for real model sizes on CPU) equals the eager path
    to within one bf16 rounding (fp32 operation order may differ)."""
    dirs = save_components(tmp_path, 3, dtype=torch.bfloat16)
    eager = MergeEngine.from_checkpoints(dirs, device="cpu", dtype="bfloat16", compile=False)
    fused = MergeEngine.from_checkpoints(dirs, device="cpu", dtype="bfloat16", compile=True)
    assert fused.compiled and not eager.compiled
    for w in ([0.2, 0.3, 0.5], [0.0, 1.0, 0.0]):
        eager.merge(w)
        fused.merge(w)
        torch.testing.assert_close(fused.flat.float(), eager.flat.float(), rtol=2**-7, atol=1e-6)
    assert fused.compiled  # it did not fall back to eager
