"""Mixtures: merge weights w, data ratios r, the one ``name=value,...`` parser, constraints (pure).

A component is trained on (1-beta)*D_i + beta*G, so a proxy merged with weights w stands for the data
mixture r = beta*e_G + (1-beta)*w (../DESIGN.md). :mod:`.constraints` holds the bounds on w shared by
search, the law's optimum and export; :mod:`.bounds` the same bounds stated on r.
"""

from __future__ import annotations

from demix.mixture.weights import (
    as_dict,
    format_weights,
    from_mapping,
    parse_weights,
    ratios_to_weights,
    weights_to_ratios,
)

__all__ = [
    "as_dict",
    "format_weights",
    "from_mapping",
    "parse_weights",
    "ratios_to_weights",
    "weights_to_ratios",
]
