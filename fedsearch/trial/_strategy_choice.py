"""The strategy a trial runs: the one its selection searched, else the study's."""

from __future__ import annotations

from fedsearch.components import Strategy
from fedsearch.search._resolve import ResolvedStudy
from fedsearch.search._space import Selection


def selected_strategy(study: ResolvedStudy, selection: Selection | None) -> Strategy:
    """A fresh strategy: ``slots.strategy``'s pick when searched, else ``federation.strategy``."""
    if selection is not None and selection.strategy is not None:
        built = study.registry.create(
            "strategy", selection.strategy.name, selection.strategy.params
        )
    else:
        built = study.strategy.build()
    assert isinstance(built, Strategy)
    return built
