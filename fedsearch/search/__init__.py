"""What to search: the search space, a trial's selection, and a study file resolved.

This package is the bottom layer of the search: ``fedsearch.trial`` evaluates one
selection and ``fedsearch.study`` runs many of them; neither is imported here.
"""

from __future__ import annotations

from fedsearch.search._describe import describe_fixed, describe_searched, describe_selection
from fedsearch.search._resolve import (
    OBJECTIVE_DIRECTIONS,
    OBJECTIVE_NAMES,
    ResolvedStudy,
    default_storage_url,
    resolve_study,
)
from fedsearch.search._space import (
    NONE,
    SLOTS,
    ComponentChoice,
    Dimension,
    SearchSpace,
    Selection,
)

__all__ = [
    "NONE",
    "OBJECTIVE_DIRECTIONS",
    "OBJECTIVE_NAMES",
    "SLOTS",
    "ComponentChoice",
    "Dimension",
    "ResolvedStudy",
    "SearchSpace",
    "Selection",
    "default_storage_url",
    "describe_fixed",
    "describe_searched",
    "describe_selection",
    "resolve_study",
]
