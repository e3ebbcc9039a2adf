"""One source of token counts for every stage: search.token_counts when stated, else the manifest."""

from __future__ import annotations

import numpy as np

from demix.config import ExperimentConfig
from demix.data.manifest import Manifest, token_counts
from demix.run import RunDir
from tests.conftest import tiny_config


def test_manifest_counts_unless_the_config_states_them(
    prepared_run: RunDir, tiny_cfg: ExperimentConfig
) -> None:
    m = Manifest.load(prepared_run)
    names = list(reversed(m.names))  # asked order, not the manifest's
    want = dict(zip(m.names, m.token_counts("train"), strict=True))
    np.testing.assert_array_equal(token_counts(tiny_cfg, prepared_run, names), [want[d] for d in names])

    stated = {d: 1000 * (i + 1) for i, d in enumerate(m.names)}
    over = tiny_config(prepared_run.root, "search.token_counts=" + repr(stated).replace(" ", ""))
    np.testing.assert_array_equal(token_counts(over, prepared_run, m.names), [stated[d] for d in m.names])


def test_unknown_before_prepare_or_for_a_domain_not_covered(
    prepared_run: RunDir, tiny_cfg: ExperimentConfig, tmp_path
) -> None:
    assert token_counts(tiny_cfg, RunDir(tmp_path / "fresh"), tiny_cfg.domains) is None
    assert token_counts(tiny_cfg, None, tiny_cfg.domains) is None
    assert token_counts(tiny_cfg, prepared_run, [*tiny_cfg.domains, "elsewhere"]) is None
