"""A deterministic mixture sampler: training sequences drawn from several domains in given proportions.

Batch ``i`` is a pure function of (seed, i, rank), so a resumed run sees exactly the data an
uninterrupted one would, and DDP ranks see disjoint draws without coordination.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from demix.data.manifest import Manifest
from demix.errors import DemixError
from demix.run import RunDir


class MixtureSampler:
    """Draw windows of ``seq_len + 1`` tokens; each row's domain is drawn with the given ratios.

    Example::

        sampler = MixtureSampler(run, manifest, {"prose": 0.5, "code": 0.5}, seq_len=128, seed=0)
        x = sampler.batch(step, batch_size=16)  # LongTensor (16, 129): inputs x[:, :-1], targets x[:, 1:]
    """

    def __init__(
        self,
        run: RunDir,
        manifest: Manifest,
        ratios: Mapping[str, float] | Sequence[float] | np.ndarray,
        *,
        seq_len: int,
        seed: int = 0,
        split: str = "train",
    ) -> None:
        names = manifest.names
        if isinstance(ratios, Mapping):
            unknown = set(ratios) - set(names)
            if unknown:
                raise DemixError(f"mixture names unknown domain(s): {', '.join(sorted(unknown))}")
            p = np.array([float(ratios.get(n, 0.0)) for n in names])
        else:
            p = np.asarray(ratios, dtype=np.float64)
            if p.shape != (len(names),):
                raise DemixError(f"mixture has {p.size} values for {len(names)} domains")
        if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise DemixError(f"mixture must be finite, >= 0 and not all 0, got {p.tolist()}")
        self.ratios = p / p.sum()
        self.seq_len = seq_len
        self.seed = seed
        self.names = names
        self._tokens = [
            manifest.tokens(run, n, "train" if split == "train" else "val") if self.ratios[i] > 0 else None
            for i, n in enumerate(names)
        ]
        for i, toks in enumerate(self._tokens):
            if toks is not None and len(toks) < seq_len + 2:
                raise DemixError(
                    f"domain {names[i]!r} has {len(toks)} {split} tokens, fewer than seq_len+2={seq_len + 2}"
                )

    def batch(self, index: int, batch_size: int, *, rank: int = 0) -> torch.Tensor:
        """The ``index``-th batch for ``rank``: a LongTensor of shape (batch_size, seq_len + 1)."""
        rng = np.random.default_rng([self.seed, index, rank])
        doms = rng.choice(len(self.ratios), size=batch_size, p=self.ratios)
        out = np.empty((batch_size, self.seq_len + 1), dtype=np.int64)
        for row, d in enumerate(doms):
            toks = self._tokens[d]
            assert toks is not None
            start = int(rng.integers(0, len(toks) - self.seq_len - 1))
            out[row] = toks[start : start + self.seq_len + 1]
        return torch.from_numpy(out)

    def domains(self, index: int, batch_size: int, *, rank: int = 0) -> np.ndarray:
        """The domain (manifest index) of each row of ``batch(index, batch_size, rank=rank)``.

        The same first draw from the same generator as :meth:`batch`, so it never changes the data.
        """
        rng = np.random.default_rng([self.seed, index, rank])
        return rng.choice(len(self.ratios), size=batch_size, p=self.ratios)
