"""Every rule a stage checks later, checked once before anything runs.

The pydantic schema (:mod:`demix.config`) checks what one config can say about itself; the rules
here need the registries of the stages (samplers, merge methods, lm-eval tasks, the constraint
builder), which sit above ``config``. ``demix config validate`` and every command that loads a
config (``demix run`` included) call :func:`require`, which reports all problems at once, each
naming its key.
"""

from __future__ import annotations

from demix.preflight.rules import COMPARE_ALONE, RULES, problems, require, stages_but

__all__ = ["COMPARE_ALONE", "RULES", "problems", "require", "stages_but"]
