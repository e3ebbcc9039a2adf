"""The run directory: one experiment, one directory; every stage writes only its own part."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from demix.config import ExperimentConfig


@dataclass(frozen=True)
class RunDir:
    """Paths inside ``runs/<name>/`` (see DESIGN.md, "The run directory")."""

    root: Path

    @classmethod
    def for_config(cls, cfg: ExperimentConfig, run_dir: Path | None = None) -> RunDir:
        return cls(Path(run_dir) if run_dir is not None else cfg.resolved_run_dir())

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def manifest(self) -> Path:
        return self.data / "manifest.json"

    @property
    def tokenizer(self) -> Path:
        return self.data / "tokenizer"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def base(self) -> Path:
        return self.models / "base"

    def component(self, domain: str) -> Path:
        return self.models / "components" / domain

    def reference(self, ref_id: str) -> Path:
        return self.models / "references" / ref_id

    @property
    def tasks(self) -> Path:
        return self.root / "tasks"

    @property
    def search(self) -> Path:
        return self.root / "search"

    @property
    def trials_csv(self) -> Path:
        return self.search / "trials.csv"

    @property
    def baselines(self) -> Path:
        return self.search / "baselines.json"

    @property
    def law(self) -> Path:
        return self.root / "law"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def validation(self) -> Path:
        return self.root / "validation"

    @property
    def stages(self) -> Path:
        return self.root / ".stages"
