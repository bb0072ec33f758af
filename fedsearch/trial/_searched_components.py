"""The strategy and middleware a trial runs: what its selection searched, else the study's."""

from __future__ import annotations

from fedsearch.components import Strategy
from fedsearch.host import ComponentSpec
from fedsearch.search._resolve import ResolvedStudy
from fedsearch.search._space import MIDDLEWARE_SLOT, Selection


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


def selected_middleware(
    study: ResolvedStudy, selection: Selection | None
) -> tuple[ComponentSpec, ...]:
    """``federation.middleware``, then ``slots.middleware``'s pick when one was searched."""
    if selection is None or selection.middleware is None:
        return study.middleware
    choice = selection.middleware
    searched = study.registry.spec(
        "middleware", choice.name, choice.params, field=f"search.slots.{MIDDLEWARE_SLOT}"
    )
    return (*study.middleware, searched)
