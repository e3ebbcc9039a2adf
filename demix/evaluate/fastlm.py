"""A faster lm-eval ``HFLM`` for the live model: the same requests and numbers, a fraction of the work.

Stock ``HFLM._loglikelihood_tokens`` runs the whole model over context + continuation for every
request, takes ``log_softmax`` over the full vocabulary at every position of a right-padded batch and
then reads out the few continuation positions; a multiple-choice item pays for its context once per
choice. :class:`LiveHFLM` keeps lm-eval as the harness (its tasks, requests, metrics and
``evaluate``) and changes only how those numbers are computed:

* **prefix sharing**: requests with the same context tokens go in one row, the context once, then
  each continuation (less its last token) with its own position ids, under a block mask so that a
  continuation attends to the context and to itself only;
* **LM head on scored positions only**: the decoder's hidden states are gathered at the positions that
  predict continuation tokens; log-probabilities are ``logit[target] - logsumexp(logits)`` in float32
  on those rows, and no ``[batch, length, vocab]`` ``log_softmax`` is ever materialised;
* **one plan per call**: identical requests are computed once, rows are sorted by length and batched
  by a token budget (``batch_size x max_length`` tokens, cut where padding would pass
  :data:`SLACK`), and ``loglikelihood_rolling`` hands every
  window of every document over in one call.

Log-probabilities are computed in float32 (or ``softmax_dtype``) whatever the model's dtype; stock
HFLM takes its ``log_softmax`` in the model's dtype (bf16 on a GPU) unless ``softmax_dtype`` is set.
In float32, results equal stock HFLM's up to float rounding (``tests/test_evaluate_fastlm.py`` compares
log-likelihoods, ``is_greedy`` and rolling sums on the same model). Requests that stock HFLM would
left-truncate, seq2seq models, several processes, ``batch_size: auto`` and ``generate_until`` take the
stock path. The first call checks the fast path against the stock one on a few probe requests and
falls back to stock for good if they disagree (an architecture whose logits are not
``lm_head(decoder(x))``, or whose attention ignores a custom 4D mask).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from lm_eval import utils
from lm_eval.models.huggingface import HFLM

log = logging.getLogger(__name__)

Request = tuple[Any, list[int], list[int]]  # ((context, continuation) or None, context ids, continuation ids)

#: Shortest shared context worth a masked, packed row (a one-token context, as in rolling windows,
#: saves nothing and would give up the mask-free causal kernel).
MIN_SHARED_CONTEXT = 4
#: Probe tolerance on a summed log-likelihood, relative to 1 + |value| (float32; 50x for 16-bit).
PROBE_RTOL = 1e-4
#: Padding allowed in a batch, as a fraction of its longest row (more cuts: more, smaller batches).
SLACK = 0.1
#: Logits scored at a time: fits a CPU's L2 cache; on a GPU, bounds memory for large vocabularies.
CHUNK_ELEMENTS_CPU = 1 << 21
CHUNK_ELEMENTS_CUDA = 1 << 26


@dataclass
class _Row:
    """One model input row: tokens, their positions, segment ids and the positions scored."""

    tokens: list[int]
    positions: list[int]
    segments: list[int]  # 0: the shared context; i > 0: continuation i of this row
    continuations: int = 0  # continuations with tokens in this row (a one-token one adds none)
    picks: list[int] = field(default_factory=list)  # row index whose output predicts ...
    targets: list[int] = field(default_factory=list)  # ... this token ...
    owners: list[int] = field(default_factory=list)  # ... for this unique request

    @property
    def packed(self) -> bool:
        """Whether continuations share the row (then it needs the block mask)."""
        return self.continuations > 1


def plan_rows(requests: list[Request], max_length: int, share: bool) -> tuple[list[_Row], list[int], int]:
    """Rows to run for ``requests``: (rows, request -> unique id, number of unique requests).

    Each unique (context, continuation) pair is scored once. With ``share``, continuations of a
    context of at least :data:`MIN_SHARED_CONTEXT` tokens are packed behind one copy of it, in rows
    of at most ``max_length`` tokens. Every request must satisfy ``len(ctx) + len(cont) <=
    max_length + 1`` (what stock HFLM scores without truncation).
    """
    groups: dict[tuple[int, ...], dict[tuple[int, ...], int]] = {}
    slots: list[int] = []
    n = 0
    for _, ctx_ids, cont_ids in requests:
        conts = groups.setdefault(tuple(ctx_ids), {})
        uid = conts.get(tuple(cont_ids))
        if uid is None:
            uid = conts[tuple(cont_ids)] = n
            n += 1
        slots.append(uid)
    rows: list[_Row] = []
    for ctx, conts in groups.items():
        c = len(ctx)
        pack = share and c >= MIN_SHARED_CONTEXT and len(conts) > 1
        row: _Row | None = None
        for cont, uid in conts.items():
            extra = len(cont) - 1
            if row is None or not pack or len(row.tokens) + extra > max_length:
                row = _Row(list(ctx), list(range(c)), [0] * c)
                rows.append(row)
            start = len(row.tokens)
            if extra:
                row.continuations += 1
                row.tokens.extend(cont[:-1])
                row.positions.extend(range(c, c + extra))
                row.segments.extend([row.continuations] * extra)
            row.picks.append(c - 1)
            row.picks.extend(range(start, start + extra))
            row.targets.extend(cont)
            row.owners.extend([uid] * len(cont))
    return rows, slots, n


def batches(rows: list[_Row], budget: int, slack: float = 0.0) -> list[list[_Row]]:
    """Rows sorted longest first, cut into batches of at most ``budget`` padded tokens (>= 1 row).

    A batch also ends where the next row is shorter than ``1 - slack`` of its longest (``slack`` 0:
    cut by budget only), which bounds the padding.
    """
    out: list[list[_Row]] = []
    for row in sorted(rows, key=lambda r: -len(r.tokens)):
        if out:
            width = len(out[-1][0].tokens)
            if (len(out[-1]) + 1) * width <= budget and (
                slack <= 0 or len(row.tokens) >= (1 - slack) * width
            ):
                out[-1].append(row)
                continue
        out.append([row])
    return out


class LiveHFLM(HFLM):
    """lm-eval's ``HFLM`` with a faster ``loglikelihood`` / ``loglikelihood_rolling`` (see the module).

    Built exactly like ``HFLM`` (``pretrained`` may be a live model object); ``fast=False`` gives the
    stock behaviour. ``generate_until`` is HFLM's own.
    """

    softmax_dtype: torch.dtype | None  # HFLM's; set by its __init__

    def __init__(self, *args: Any, fast: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast = fast
        self._probed: bool | None = None  # None: not checked yet

    # ---- when the fast path applies ---------------------------------------------------------------

    def _attn_impl(self) -> str:
        return str(getattr(self.model.config, "_attn_implementation", None) or "eager")

    def _can_share(self) -> bool:
        return self._attn_impl() in ("sdpa", "eager")

    def _fast_ok(self) -> bool:
        if not self.fast or self.backend != "causal" or self.world_size > 1:
            return False
        if not isinstance(self.batch_size, int) or self.model.get_output_embeddings() is None:
            return False
        if self._probed is None:
            self._probed = self._probe()
        return self._probed

    def _probe(self) -> bool:
        """Score a few synthetic requests both ways; False (and a warning) if they disagree."""
        vocab = int(self.model.get_output_embeddings().weight.shape[0])
        ctx = [(7 * i + 3) % vocab for i in range(9)]
        conts = [
            [11 % vocab],
            [(5 * i + 1) % vocab for i in range(3)],
            [(13 * i + 2) % vocab for i in range(2)],
        ]
        reqs: list[Request] = [(None, ctx, c) for c in conts] + [(None, ctx[:2], conts[1])]
        try:
            fast = self._fast_tokens(reqs, share=self._can_share())
        except Exception as e:  # an architecture this path does not fit: stock lm-eval still does
            log.warning("LiveHFLM: fast path unavailable (%s: %s); using stock HFLM", type(e).__name__, e)
            return False
        softmax_dtype = self.softmax_dtype
        self.softmax_dtype = softmax_dtype or torch.float32  # compare computations, not precisions
        try:
            stock = super()._loglikelihood_tokens(reqs, disable_tqdm=True)
        finally:
            self.softmax_dtype = softmax_dtype
        wide = self.model.dtype in (torch.float32, torch.float64)
        tol = PROBE_RTOL * (1 if wide else 50)
        bad = [
            (a[0], b[0]) for a, b in zip(fast, stock, strict=True) if abs(a[0] - b[0]) > tol * (1 + abs(b[0]))
        ]
        if bad:
            log.warning("LiveHFLM: fast path disagrees with stock HFLM on a probe %s; using stock HFLM", bad)
        return not bad

    # ---- lm-eval entry points ---------------------------------------------------------------------

    def _loglikelihood_tokens(  # type: ignore[override]
        self, requests: list[Request], disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[tuple[float, bool]]:
        if not requests or not self._fast_ok():
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        limit = self.max_length + 1
        fits = [bool(ctx and cont and len(ctx) + len(cont) <= limit) for _, ctx, cont in requests]
        out: list[tuple[float, bool] | None] = [None] * len(requests)
        for want, run in ((True, self._fast_tokens), (False, self._stock_tokens)):
            idx = [i for i, f in enumerate(fits) if f is want]  # stock: left-truncation, lm-eval's asserts
            if idx:
                for i, r in zip(idx, run([requests[i] for i in idx]), strict=True):
                    out[i] = r
        for (key, _, _), answer in zip(requests, out, strict=True):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, answer)
        return [r for r in out if r is not None]

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Stock windows (``get_rolling_token_windows``), all scored in one fast call."""
        if not self._fast_ok():
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
        windows: list[Request] = []
        counts: list[int] = []
        max_length = self.max_length
        for req in requests:
            (string,) = req.args
            rolling = utils.get_rolling_token_windows(
                token_list=self.tok_encode(string),
                prefix_token=self.prefix_token_id,
                max_seq_len=max_length,
                context_len=1,
            )
            found = [(None, *utils.make_disjoint_window(w)) for w in rolling]
            windows.extend(found)  # type: ignore[arg-type]
            counts.append(len(found))
        scores = self._loglikelihood_tokens(windows, disable_tqdm=True)
        totals: list[float] = []
        at = 0
        for req, k in zip(requests, counts, strict=True):
            total = sum(s[0] for s in scores[at : at + k])
            at += k
            totals.append(total)
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    # ---- the fast path ----------------------------------------------------------------------------

    def _stock_tokens(self, requests: list[Request]) -> list[tuple[float, bool]]:
        return super()._loglikelihood_tokens(requests, disable_tqdm=True)

    def _fast_tokens(self, requests: list[Request], share: bool | None = None) -> list[tuple[float, bool]]:
        """(sum of log p(continuation | context), every continuation token greedy) per request."""
        share = self._can_share() if share is None else share
        max_length = self.max_length
        rows, slots, n = plan_rows(requests, max_length, share)
        logp = torch.zeros(n, dtype=torch.float64)
        misses = torch.zeros(n, dtype=torch.long)
        decoder = self.model.get_decoder()
        head = self.model.get_output_embeddings()
        eager = self._attn_impl() == "eager"
        budget = max(int(self.batch_size), 1) * max_length
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            for batch in batches([r for r in rows if r.packed], budget, SLACK) + batches(
                [r for r in rows if not r.packed], budget, SLACK
            ):
                hidden = self._hidden(decoder, batch, masked=batch[0].packed, eager=eager)
                width = hidden.shape[1]
                flat = [b * width + p for b, row in enumerate(batch) for p in row.picks]
                targets = torch.tensor([t for row in batch for t in row.targets], device=self.device)
                owners = torch.tensor([o for row in batch for o in row.owners])
                lp, hit = self._score(head, hidden.reshape(-1, hidden.shape[-1]), flat, targets)
                logp.index_add_(0, owners, lp.double().cpu())
                misses.index_add_(0, owners, (~hit).long().cpu())
        sums, greedy = logp.tolist(), (misses == 0).tolist()
        return [(sums[u], greedy[u]) for u in slots]

    def _hidden(self, decoder: Any, batch: list[_Row], *, masked: bool, eager: bool) -> torch.Tensor:
        """The decoder's last hidden states for a batch of rows, right-padded, [rows, width, hidden]."""
        width = len(batch[0].tokens)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        for b, row in enumerate(batch):
            ids[b, : len(row.tokens)] = torch.tensor(row.tokens)
        kwargs: dict[str, Any] = {}
        if masked:  # block mask: causal, and a continuation sees only the context and itself
            seg = torch.full((len(batch), width), -1, dtype=torch.long)
            pos = torch.zeros(len(batch), width, dtype=torch.long)
            for b, row in enumerate(batch):
                seg[b, : len(row.tokens)] = torch.tensor(row.segments)
                pos[b, : len(row.tokens)] = torch.tensor(row.positions)
            causal = torch.ones(width, width, dtype=torch.bool).tril()
            q, k = seg[:, :, None], seg[:, None, :]
            allowed = causal & ((k == 0) | (k == q)) & (q >= 0) | torch.eye(width, dtype=torch.bool)
            mask = allowed[:, None].to(self.device)
            if eager:  # eager attention adds the mask to the scores
                dtype = self.model.dtype
                mask = torch.zeros(mask.shape, dtype=dtype, device=self.device).masked_fill(
                    ~mask, torch.finfo(dtype).min
                )
            kwargs = {"attention_mask": mask, "position_ids": pos.to(self.device)}
        out = decoder(input_ids=ids.to(self.device), use_cache=False, **kwargs)
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    def _score(
        self, head: Any, hidden: torch.Tensor, flat: list[int], targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(target) and whether it is the argmax, at the picked rows.

        In chunks small enough for the CPU cache (the logits are read three times): the target's
        logit, the row max, then ``exp(logit - max)`` summed in place; ``argmax`` only on the rows
        whose target reaches the max (to break ties as ``argmax`` does).
        """
        dtype = self.softmax_dtype or torch.float32
        index = torch.tensor(flat, device=hidden.device)
        vocab = int(head.weight.shape[0])
        chunk = max(16, (CHUNK_ELEMENTS_CUDA if hidden.is_cuda else CHUNK_ELEMENTS_CPU) // vocab)
        lps, hits = [], []
        for s in range(0, len(flat), chunk):
            logits = head(hidden.index_select(0, index[s : s + chunk])).to(dtype)
            tgt = targets[s : s + chunk]
            top = logits.amax(dim=-1)
            picked = logits.gather(1, tgt[:, None])[:, 0]
            hit = picked >= top
            if bool(hit.any()):
                hit[hit.clone()] = logits[hit].argmax(dim=-1) == tgt[hit]
            lse = logits.sub_(top[:, None]).exp_().sum(dim=-1).log_().add_(top)
            lps.append(picked - lse)
            hits.append(hit)
        return torch.cat(lps), torch.cat(hits)
