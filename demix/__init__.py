"""demix: find the pretraining data mixture to train on, without training a model per mixture.

Train one component model per candidate dataset once, approximate "a model trained on mixture w" by
the weighted average of component weights, score those proxies with lm-eval, search the weights with
Optuna, cross-check with a data-mixing law, and export the data ratios a data team can use.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
