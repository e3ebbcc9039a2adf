"""The experiment config: one pydantic schema, validated once at the edge.

Each section lives in its own file; :class:`ExperimentConfig` assembles them and checks the rules
that cross sections (the general domain is a candidate, constraints name candidates, ...).
"""

from __future__ import annotations

from demix.config.base import Count, StrictModel, format_count, parse_count
from demix.config.components import ComponentEntry, ComponentsConfig
from demix.config.data import BUILTIN_DOMAINS, CandidateConfig, CorporaConfig, SourceConfig, TokenizerConfig
from demix.config.evaluate import BuiltinTasksConfig, EvalConfig, TaskConfig
from demix.config.experiment import ExperimentConfig
from demix.config.export import ExportConfig, ValidateConfig
from demix.config.law import LawConfig
from demix.config.load import apply_overrides, apply_values, config_from_dict, dump_config, load_config
from demix.config.merge import MergeConfig
from demix.config.search import ConstraintsConfig, DemixSamplerConfig, GroupCap, SearchConfig
from demix.config.train import ModelConfig, TrainConfig

__all__ = [
    "BUILTIN_DOMAINS",
    "BuiltinTasksConfig",
    "CandidateConfig",
    "ComponentEntry",
    "ComponentsConfig",
    "ConstraintsConfig",
    "CorporaConfig",
    "Count",
    "DemixSamplerConfig",
    "EvalConfig",
    "ExperimentConfig",
    "ExportConfig",
    "GroupCap",
    "LawConfig",
    "MergeConfig",
    "ModelConfig",
    "SearchConfig",
    "SourceConfig",
    "StrictModel",
    "TaskConfig",
    "TokenizerConfig",
    "TrainConfig",
    "ValidateConfig",
    "apply_overrides",
    "apply_values",
    "config_from_dict",
    "dump_config",
    "format_count",
    "load_config",
    "parse_count",
]
