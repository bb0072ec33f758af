"""Parameter models of components and the search hints attached to their fields."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


class ComponentParams(BaseModel):
    """Base of every component's ``Params`` model: unknown fields are errors, numbers finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class NoParams(ComponentParams):
    """Params of a component without knobs."""


@dataclass(frozen=True)
class SearchRange:
    """Default search range of a numeric field, attached with ``Annotated``.

    Example::

        sparsity: Annotated[float, Field(ge=0, le=0.99), SearchRange(0.0, 0.95, step=0.05)] = 0.5

    Args:
        low: Smallest value searched.
        high: Largest value searched.
        step: Grid step, or None for a continuous range.
        log: Sample on a log scale.
    """

    low: float
    high: float
    step: float | None = None
    log: bool = False


@dataclass(frozen=True)
class SearchChoices:
    """Default categorical choices of a field, attached with ``Annotated``.

    Args:
        values: The values searched.
    """

    values: Sequence[Any]


@dataclass(frozen=True)
class SearchPerLayer:
    """A per-layer-group dimension: one value per layer, as many layers as ``count`` says.

    Attach it to a list field; ``count`` names the integer field (declared
    earlier in the model) that holds the number of layers. Each layer gets its
    own search dimension ``<name>.<i>`` over ``values``, sampled only when the
    model has that many layers. Example::

        depth: Annotated[int, Field(ge=1, le=4), SearchRange(1, 4)] = 2
        widths: Annotated[list[int], SearchPerLayer(SearchChoices([16, 32, 64]), count="depth")]

    Args:
        values: The range or choices of one layer's value.
        count: Name of the field holding the number of layers.
    """

    values: SearchRange | SearchChoices
    count: str


SearchHint = SearchRange | SearchChoices | SearchPerLayer


def search_hint(params_model: type[BaseModel], field: str) -> SearchHint | None:
    """Return the search hint declared on ``field`` of ``params_model``, if any."""
    for item in params_model.model_fields[field].metadata:
        if isinstance(item, SearchRange | SearchChoices | SearchPerLayer):
            return item
    return None
