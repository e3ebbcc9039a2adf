"""LiveHFLM (demix's fast lm-eval model) against stock lm-eval HFLM on the same tiny model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from demix.evaluate.fastlm import LiveHFLM, batches, plan_rows
from tests.handmade_run import DOMAINS, held_out, tiny_model, tiny_tokenizer

REL = 1e-6  # of a summed log-likelihood; bits per byte divide it further by the bytes scored


@pytest.fixture(scope="module")
def pair() -> dict[str, Any]:
    import torch
    from lm_eval.models.huggingface import HFLM

    torch.set_num_threads(1)
    tok = tiny_tokenizer([t for name, _ in DOMAINS for t in held_out(name)])
    model = tiny_model(seed=5)
    with torch.no_grad():  # sharpen the random init so that masks and positions change the numbers
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(6.0)
    kw = {"tokenizer": tok, "batch_size": 4, "max_length": 48}
    return {
        "tok": tok,
        "model": model,
        "fast": LiveHFLM(pretrained=model, **kw),
        "stock": HFLM(pretrained=model, **kw),
    }


def _instances(kind: str, args: Sequence[tuple[str, ...]]) -> list[Any]:
    from lm_eval.api.instance import Instance

    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]  # type: ignore[arg-type]


def _close(a: list[float], b: list[float]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert abs(x - y) <= REL * max(1.0, abs(y)), (x, y)


def test_loglikelihood_and_greedy_equal_stock(pair: dict[str, Any]) -> None:
    import torch

    fast, stock, model = pair["fast"], pair["stock"], pair["model"]
    ctx = [5, 17, 42, 99, 7, 250, 3, 11, 64, 128]
    with torch.no_grad():  # greedy continuations, so that is_greedy is True for some requests
        greedy = model.generate(torch.tensor([ctx]), max_new_tokens=4, do_sample=False)[
            0, len(ctx) :
        ].tolist()
    reqs = [
        (None, ctx, greedy),  # greedy, 4 tokens
        (None, ctx, greedy[:1]),  # greedy, one token
        (None, ctx, [greedy[0], (greedy[1] + 1) % 512]),  # greedy first token only
        (None, ctx, [9, 8, 7]),
        (None, ctx, [9, 8, 7]),  # a duplicate
        (None, ctx, [300]),
        (None, ctx[:3], [1, 2, 3, 4, 5, 6]),
        (None, ctx[:1], [77]),  # a one-token context (not shared)
        (None, list(range(1, 45)), list(range(100, 110))),  # longer than max_length: truncated, stock path
    ]
    got = fast._loglikelihood_tokens(reqs)
    want = stock._loglikelihood_tokens(reqs)
    assert fast._probed is True
    _close([g[0] for g in got], [w[0] for w in want])
    assert [g[1] for g in got] == [w[1] for w in want]
    assert [w[1] for w in want][:3] == [True, True, False]
    # the shared context was run once, packed: one row holds several continuations
    rows, slots, n = plan_rows(reqs[:-1], 48, share=True)
    assert n == len(reqs) - 2 and slots[3] == slots[4]
    assert any(r.packed for r in rows) and sum(r.tokens[:10] == ctx for r in rows) == 1


def test_string_requests_and_rolling_equal_stock(pair: dict[str, Any]) -> None:
    fast, stock = pair["fast"], pair["stock"]
    text = held_out("code")[0]
    ll = [(text[:80], text[80:95]), (text[:80], " def"), (text[:80], " x = 1"), ("", "hello world")]
    got, want = (
        fast.loglikelihood(_instances("loglikelihood", ll)),
        stock.loglikelihood(_instances("loglikelihood", ll)),
    )
    _close([g[0] for g in got], [w[0] for w in want])
    assert [g[1] for g in got] == [w[1] for w in want]
    docs = [(t[:400],) for name, _ in DOMAINS for t in held_out(name)[:2]]  # several windows of 48 tokens
    got_r = fast.loglikelihood_rolling(_instances("loglikelihood_rolling", docs))
    want_r = stock.loglikelihood_rolling(_instances("loglikelihood_rolling", docs))
    _close(got_r, want_r)


def test_probe_falls_back_when_logits_are_not_head_of_decoder(pair: dict[str, Any]) -> None:
    import copy

    model = copy.deepcopy(pair["model"])
    forward = model.forward

    def softcapped(*args: Any, **kwargs: Any) -> Any:  # logits post-processed, as some models do
        out = forward(*args, **kwargs)
        out.logits = 3.0 * (out.logits / 3.0).tanh()
        return out

    model.forward = softcapped
    lm = LiveHFLM(pretrained=model, tokenizer=pair["tok"], batch_size=4, max_length=48)
    reqs = [(None, [5, 6, 7, 8, 9], [10, 11]), (None, [5, 6, 7, 8, 9], [12])]
    got = lm._loglikelihood_tokens(reqs)
    assert lm._probed is False  # the fast path would be wrong here, so stock lm-eval scores it
    stock = LiveHFLM(pretrained=model, tokenizer=pair["tok"], batch_size=4, max_length=48, fast=False)
    assert got == stock._loglikelihood_tokens(reqs)


def test_batches_bound_padding_and_budget() -> None:
    reqs = [(None, list(range(1, 2 + i)), [7, 8]) for i in range(30)]
    rows, _, _ = plan_rows(reqs, 64, share=True)
    out = batches(rows, budget=64, slack=0.1)
    assert sorted(len(r.tokens) for b in out for r in b) == sorted(len(r.tokens) for r in rows)
    for b in out:
        width = len(b[0].tokens)
        assert len(b) == 1 or len(b) * width <= 64
        assert all(len(r.tokens) >= 0.9 * width for r in b)


def test_evaluator_scores_equal_stock_hflm_on_every_metric(pair: dict[str, Any], tmp_path: Any) -> None:
    from demix.evaluate import Evaluator, build_tasks
    from tests.handmade_run import make_run

    cfg, run = make_run(tmp_path / "run", "evaluate.builtin.accuracy_docs=24")
    ev = Evaluator(cfg, run, pair["model"], pair["tok"], build_tasks(cfg, run))
    assert isinstance(ev.lm, LiveHFLM)
    fast = ev.evaluate("search")
    ev.lm.fast = False
    stock = ev.evaluate("search")
    assert fast.details.keys() == stock.details.keys() and len(fast.details) >= 6
    for task, metrics in stock.details.items():
        assert metrics.keys() == fast.details[task].keys()
        for key, m in metrics.items():
            got, want = fast.details[task][key]["value"], m["value"]
            assert got is not None and want is not None
            if key.startswith("acc"):
                assert got == want, (task, key)  # the same choices picked
            else:
                assert abs(got - want) <= 1e-6, (task, key, got, want)
