"""The experiment: every section in one validated object, and its cross-section rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from demix.config.base import StrictModel
from demix.config.compare import CompareConfig
from demix.config.components import ComponentsConfig, ComponentsError, expand_components
from demix.config.data import CorporaConfig, TokenizerConfig
from demix.config.evaluate import EvalConfig
from demix.config.export import ExportConfig, ValidateConfig
from demix.config.law import LawConfig
from demix.config.merge import MergeConfig
from demix.config.search import SearchConfig
from demix.config.train import ModelConfig, TrainConfig


class ExperimentConfig(StrictModel):
    """A whole demix experiment. Load it with :func:`demix.config.load_config`.

    Example::

        cfg = load_config("configs/demo.yaml", overrides=["train.lr=1e-3"])
        cfg.domains  # ['prose', 'code', ...]
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    run_dir: Path | None = None  # default: runs/<name>
    seed: int = 0
    corpora: CorporaConfig = Field(default_factory=CorporaConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    merge: MergeConfig = Field(default_factory=MergeConfig)
    evaluate: EvalConfig = Field(default_factory=EvalConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    law: LawConfig = Field(default_factory=LawConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    compare: CompareConfig = Field(default_factory=CompareConfig)  # demix compare: methods side by side
    components: ComponentsConfig | None = None  # components trained elsewhere (bring your own)

    model_config = StrictModel.model_config | {"populate_by_name": True}

    @property
    def domains(self) -> list[str]:
        """Candidate names in config order (the manifest's order, once prepared, is canonical)."""
        if not self.corpora.candidates and self.components is not None:
            return list(self.components.candidates)  # brought components with no held-out text
        return [c.name for c in self.corpora.candidates]

    @model_validator(mode="before")
    @classmethod
    def _expand_components(cls, data: Any) -> Any:
        """``components:`` fills the keys it stands for (demix.config.components)."""
        if not isinstance(data, dict):
            return data
        try:
            return expand_components(data)
        except ValidationError:
            return data  # the components field's own validation reports it, with its location
        except ComponentsError as e:
            raise ValueError(str(e)) from None

    @property
    def general(self) -> str:
        assert self.corpora.general is not None  # checked by _cross_section
        return self.corpora.general

    def resolved_run_dir(self) -> Path:
        return self.run_dir if self.run_dir is not None else Path("runs") / self.name

    @model_validator(mode="after")
    def _cross_section(self) -> ExperimentConfig:
        names = self.domains
        if not names:
            raise ValueError("corpora: no candidates (give corpora.candidates or corpora.recipe)")
        if len(names) < 2:
            raise ValueError("corpora.candidates: need at least 2 candidates to mix")
        if self.corpora.general is None:
            raise ValueError("corpora.general: say which candidate is the general data")
        known = set(names)
        c = self.search.constraints
        for name in sorted(c.domains() - known):
            raise ValueError(f"search.constraints: {name!r} is not a candidate ({', '.join(names)})")
        if self.search.token_counts is not None:
            missing = known - set(self.search.token_counts)
            if missing:
                raise ValueError(f"search.token_counts: missing {', '.join(sorted(missing))}")
        if self.merge.components is not None and list(self.merge.components) != names:
            raise ValueError(
                f"merge.components must list every candidate in order ({', '.join(names)}), "
                f"got {', '.join(self.merge.components)}"
            )
        for name in sorted(set(self.evaluate.builtin.objective_domains or ()) - known):
            raise ValueError(
                f"evaluate.builtin.objective_domains: {name!r} is not a candidate ({', '.join(names)})"
            )
        if self.law.aggregate_weights is not None:
            for name in sorted(set(self.law.aggregate_weights) - known):
                raise ValueError(f"law.aggregate_weights: {name!r} is not a candidate")
        # DoReMi's starting weights are read by name in every job that tunes them; a name that is
        # no candidate would otherwise fail only when such a job starts (demix.train.weighting)
        for name in sorted(set(self.train.doremi.weights or ()) - known):
            raise ValueError(f"train.doremi.weights.{name}: not a candidate ({', '.join(names)})")
        if self.model.max_position_embeddings < self.train.seq_len:
            raise ValueError(
                f"train.seq_len={self.train.seq_len} exceeds model.max_position_embeddings="
                f"{self.model.max_position_embeddings}"
            )
        return self
