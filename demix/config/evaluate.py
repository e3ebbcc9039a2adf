"""Config section for scoring proxies with lm-eval-harness."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from demix.config.base import StrictModel

# A configured task's role; demix.evaluate.spec.SpecRole adds "loss" for the built-in bits-per-byte tasks.
TaskRole = Literal["search", "report", "both"]


class TaskConfig(StrictModel):
    """One lm-eval task (a name lm-eval knows, or one defined under an include path).

    ``role`` keeps the tasks a search optimises apart from the tasks a report judges by; a task with
    role ``both`` needs ``evaluate.allow_overlap: true``.
    """

    name: str
    group: str = "general"  # capability group: general, code, math, or the user's own
    role: TaskRole = "search"
    metric: str | None = None  # e.g. acc, acc_norm, exact_match, bits_per_byte (default: the task's first)
    limit: int | None = Field(default=None, gt=0)  # documents per evaluation (cheap search-time scoring)
    num_fewshot: int | None = Field(default=None, ge=0)
    weight: float = Field(default=1.0, gt=0)


class BuiltinTasksConfig(StrictModel):
    """The offline task suite generated from each candidate's held-out documents."""

    enabled: bool = True
    bpb: bool = True  # per-domain bits-per-byte (loglikelihood_rolling) -> the law's loss:<domain>
    bpb_docs: int = Field(default=64, gt=0)  # held-out documents per domain for bits-per-byte
    bpb_max_chars: int = Field(default=1500, gt=0)  # truncate long documents to keep evaluation cheap
    accuracy: bool = True  # math / code / prose multiple-choice tasks
    accuracy_docs: int = Field(default=200, gt=0)  # items per accuracy task (split search/report)
    # false: accuracy tasks are report-only (all items, none optimised) and shown beside the report
    # objective, not counted in it, which stays the held-out twin of what the search optimises; e.g.
    # the search optimises bits per byte (bpb_objective) and accuracy shows whether that carried over.
    accuracy_objective: bool = True
    report_fraction: float = Field(default=0.5, gt=0, lt=1)  # items held back for the report tasks
    seed: int = 0
    choices: int = Field(default=4, ge=2, le=10)  # options per accuracy item (1 true + distractors)
    context_chars: int = Field(default=600, gt=0)  # context kept before each item's answer
    metric: Literal["auto", "acc", "acc_norm"] = "auto"  # auto: acc_norm (per byte) for code lines, else acc
    # domain -> task kind; default by group: math -> equation, code -> order, else cloze (demix.evaluate.items)
    kinds: dict[str, Literal["equation", "order", "math", "code", "cloze"]] = Field(default_factory=dict)
    # Count per-domain bits per byte in the objective (they always feed the law); the report then
    # scores bits per byte on other held-out documents. Useful where accuracy tasks sit near chance.
    bpb_objective: bool = False
    # Domains whose built-in tasks score proxies (default: every candidate). The others still get
    # their bits per byte measured for the law: candidates that may help the scored capabilities.
    objective_domains: list[str] | None = None


class EvalConfig(StrictModel):
    """How proxies are evaluated: built-in tasks, extra lm-eval tasks, batch and length settings."""

    builtin: BuiltinTasksConfig = Field(default_factory=BuiltinTasksConfig)
    tasks: list[TaskConfig] = Field(default_factory=list)
    include_paths: list[Path] = Field(default_factory=list)  # extra directories of lm-eval task YAML
    allow_overlap: bool = False  # allow a task to be both optimised and reported
    confirm_run_unsafe_code: bool = False  # needed for code-execution tasks (HumanEval, MBPP)
    batch_size: int = Field(default=16, gt=0)
    max_length: int | None = Field(default=None, gt=0)  # default: the model's context length
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fewshot_seed: int = 1234  # reset before every call so few-shot prompts never change between proxies
    stderr_bootstrap: int = Field(default=200, ge=0)  # bootstrap draws for metrics with no closed-form stderr

    @model_validator(mode="after")
    def _overlap(self) -> EvalConfig:
        names = [t.name for t in self.tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"evaluate.tasks lists {', '.join(dup)} more than once")
        b = self.builtin
        searched = [t for t in self.tasks if t.role in ("search", "both")]
        if b.enabled and b.accuracy and not b.accuracy_objective and not b.bpb_objective and not searched:
            raise ValueError(
                "evaluate.builtin.accuracy_objective: false leaves the search nothing to optimise; "
                "set evaluate.builtin.bpb_objective: true or add a search task to evaluate.tasks"
            )
        both = [t.name for t in self.tasks if t.role == "both"]
        if both and not self.allow_overlap:
            raise ValueError(
                f"task(s) {', '.join(both)} would be both optimised and reported; "
                "set evaluate.allow_overlap: true if that is intended"
            )
        return self
