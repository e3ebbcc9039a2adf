"""Online domain weights inside the training loop: DoReMi's group DRO as a domain-weight schedule.

The data is drawn as in a static job (the job's ratios, :class:`~demix.data.MixtureSampler`); what
changes is the loss. Each sequence's domain is known from the sampler's draw
(:meth:`MixtureSampler.domains`), so the weight of every token of a step is known on the host
before the step starts, on every rank, without a collective. Per micro-batch the reference model's
per-token losses are computed under ``no_grad``, the proxy's loss is the α-weighted per-domain mean
(:func:`~demix.train.doremi.step_token_weights`), and the clipped excess loss is summed per domain;
after the step one all-reduce gives every rank the same sums and the same update
(:class:`~demix.train.doremi.DoReMiState`).

The update made from step t's batch applies from step t+1. (DoReMi's repo, with gradient
accumulation, also weighs all but the last micro-batch of a step with the weights of before the
step's update; here every micro-batch of a step is weighted alike.)

Rank 0 appends one row per step to ``domain_weights.jsonl`` in the job's directory: the step, its
tokens per domain, its excess losses (null for a domain it drew no token of) and the weights after
its update. The state travels in the resumable checkpoint's ``state.json``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.config import ExperimentConfig, TrainConfig
from demix.errors import DemixError
from demix.train.dist import DistInfo, all_reduce_sum
from demix.train.doremi import DoReMiSettings, DoReMiState, step_token_weights
from demix.train.hardware import autocast
from demix.util.hashing import hash_file
from demix.util.torchenv import quiet_transformers

if TYPE_CHECKING:
    import torch

    from demix.data import Manifest, MixtureSampler

LOG = "domain_weights.jsonl"


def doremi_settings(
    cfg: ExperimentConfig, manifest: Manifest, ratios: np.ndarray, reference: Path
) -> DoReMiSettings:
    """``train.doremi`` for a job that samples ``ratios``: start weights, reference and its hash.

    Raises:
        DemixError: no reference checkpoint at ``reference``, or start weights that name an unknown
            domain, a domain the job never samples, or are all 0 on the ones it does.
    """
    dc = cfg.train.doremi
    ref = Path(reference)
    weights = ref / "model.safetensors"
    if not weights.is_file() or not (ref / "config.json").is_file():
        raise DemixError("no reference model checkpoint (config.json + model.safetensors)", path=ref)
    summary_hash = None
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no summary: hash the weights
        summary_hash = json.loads((ref / "train_summary.json").read_text()).get("weights_sha256")
    r = np.asarray(ratios, dtype=np.float64)
    if dc.weights is None:
        start = r.copy()
    else:
        unknown = sorted(set(dc.weights) - set(manifest.names))
        if unknown:
            raise DemixError(f"train.doremi.weights: unknown domain(s) {', '.join(unknown)}")
        start = np.array([float(dc.weights.get(n, 0.0)) for n in manifest.names])
        outside = [n for n, s, p in zip(manifest.names, start, r, strict=True) if s > 0 and p <= 0]
        if outside:
            raise DemixError(f"train.doremi.weights: the job draws no data of {', '.join(outside)}")
        if start.sum() <= 0:
            raise DemixError("train.doremi.weights: all 0 on the domains the job draws")
    return DoReMiSettings(
        reference=ref,
        reference_hash=str(summary_hash or hash_file(weights)),
        eta=dc.eta,
        epsilon=dc.epsilon,
        update_every=dc.update_every,
        start=start / start.sum(),
    )


def _load_reference(path: Path, proxy: Any, device: torch.device) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with quiet_transformers():
            ref = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    except (OSError, ValueError) as e:
        raise DemixError(f"cannot load the DoReMi reference model: {e}", path=path) from None
    if ref.config.vocab_size != proxy.config.vocab_size:
        raise DemixError(
            f"the DoReMi reference has {ref.config.vocab_size} vocabulary rows, the model trained "
            f"{proxy.config.vocab_size}: it must use this run's tokenizer",
            path=path,
        )
    ref.config.use_cache = False
    ref.requires_grad_(False)
    ref.to(device)  # type: ignore[arg-type]  # nn.Module.to(device)
    return ref.eval()


def _token_losses(model: Any, x: torch.Tensor, amp: torch.dtype | None) -> torch.Tensor:
    """Per-token next-token losses (B, T) in fp32."""
    import torch.nn.functional as F

    with autocast(x.device, amp):
        logits = model(input_ids=x[:, :-1]).logits  # (B, T, V)
    tok = F.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten(), reduction="none")
    return tok.view(x.shape[0], -1)


class DomainWeighting:
    """DoReMi weights for one job: per micro-batch the weighted loss, per step the update."""

    def __init__(
        self,
        *,
        settings: DoReMiSettings,
        state: DoReMiState,
        reference: Any,
        sampler: MixtureSampler,
        support: np.ndarray,
        names: list[str],
        info: DistInfo,
        device: torch.device,
        amp: torch.dtype | None,
        micro_batch: int,
        grad_accum: int,
        out: Path,
    ) -> None:
        self.settings, self.state, self.reference, self.sampler = settings, state, reference, sampler
        self.support, self.names = support, names  # manifest indices of the weighted domains, their names
        self.info, self.device, self.amp = info, device, amp
        self.micro_batch, self.grad_accum, self.out = micro_batch, grad_accum, out
        self._pos = np.full(len(sampler.names), -1, dtype=np.int64)
        self._pos[support] = np.arange(support.size)
        self._step: int | None = None
        self._tokens = np.zeros(support.size)
        self._rows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # slot -> (row weights, row domain)
        self._excess: torch.Tensor | None = None

    def _prepare(self, step: int) -> None:
        """Every slot's domains of ``step`` (all ranks): tokens per domain and each row's weight."""
        import torch

        slots = self.info.world_size * self.grad_accum
        doms = [self._pos[self.sampler.domains(step, self.micro_batch, rank=s)] for s in range(slots)]
        counts = np.bincount(np.concatenate(doms), minlength=self.support.size)
        self._tokens = (counts * self.sampler.seq_len).astype(np.float64)
        per_token = (
            step_token_weights(self.state.weights, self._tokens) * self.info.world_size
        )  # DDP averages
        mine = range(self.info.rank * self.grad_accum, (self.info.rank + 1) * self.grad_accum)
        self._rows = {
            s: (
                torch.tensor(per_token[doms[s]], dtype=torch.float32, device=self.device),
                torch.tensor(doms[s], dtype=torch.long, device=self.device),
            )
            for s in mine
        }
        self._excess = torch.zeros(self.support.size, dtype=torch.float32, device=self.device)
        self._step = step

    def forward_backward(self, model: Any, x: torch.Tensor, step: int, slot: int) -> torch.Tensor:
        """Backpropagate this micro-batch's share of the step's weighted loss.

        Returns:
            The detached plain mean token loss (what the log and the spike guard read).
        """
        import torch

        if self._step != step:
            self._prepare(step)
        assert self._excess is not None
        row_w, row_dom = self._rows[slot]
        with torch.no_grad():
            ref = _token_losses(self.reference, x, self.amp)  # (B, T)
        tok = _token_losses(model, x, self.amp)  # (B, T)
        (tok * row_w[:, None]).sum().backward()
        self._excess.index_add_(0, row_dom, (tok.detach() - ref).clamp_min(0).sum(dim=1))
        return tok.detach().mean()

    def end_step(self, step: int) -> None:
        """After the step's micro-batches: sum the excess over ranks, update, log (rank 0)."""
        assert self._excess is not None and self._step == step
        excess = all_reduce_sum(self._excess, self.info).double().cpu().numpy()
        tokens = self._tokens
        self.state.end_step(excess, tokens)
        if self.info.is_main:
            lam = [round(float(e / n), 6) if n > 0 else None for e, n in zip(excess, tokens, strict=True)]
            row = {
                "step": step + 1,
                "tokens": dict(zip(self.names, (int(n) for n in tokens), strict=True)),
                "excess": dict(zip(self.names, lam, strict=True)),
                "weights": self._named(self.state.weights),
            }
            with open(self.out / LOG, "a") as f:
                f.write(json.dumps(row) + "\n")

    def _named(self, v: np.ndarray) -> dict[str, float]:
        return {n: float(x) for n, x in zip(self.names, v, strict=True)}

    def summary(self) -> dict[str, Any]:
        """What ``train_summary.json`` records under ``domain_weights``."""
        s, st = self.settings, self.state
        return {
            "method": "doremi",
            "averaged": self._named(st.averaged),
            "final": self._named(st.weights),
            "start": self._named(s.start[self.support]),
            "eta": s.eta,
            "epsilon": s.epsilon,
            "update_every": s.update_every,
            "updates": st.updates,
            "reference": str(s.reference),
            "reference_sha256": s.reference_hash,
        }


def open_weighting(
    settings: DoReMiSettings | None,
    *,
    manifest: Manifest,
    ratios: np.ndarray,
    sampler: MixtureSampler,
    proxy: Any,
    info: DistInfo,
    device: torch.device,
    amp: torch.dtype | None,
    train: TrainConfig,
    out: Path,
    saved: dict[str, Any] | None,
) -> DomainWeighting | None:
    """The job's domain-weight schedule (None: static), resumed from ``saved`` when given."""
    if settings is None:
        return None
    support = np.flatnonzero(np.asarray(ratios) > 0)
    if saved is not None:
        state = DoReMiState.from_dict(saved)
    else:
        dc = settings
        state = DoReMiState.start(
            settings.start[support], eta=dc.eta, epsilon=dc.epsilon, update_every=dc.update_every
        )
    return DomainWeighting(
        settings=settings,
        state=state,
        reference=_load_reference(settings.reference, proxy, device),
        sampler=sampler,
        support=support,
        names=[manifest.names[i] for i in support],
        info=info,
        device=device,
        amp=amp,
        micro_batch=train.micro_batch_size,
        grad_accum=train.grad_accum,
        out=out,
    )
