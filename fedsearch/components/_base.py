"""The root of every component kind."""

from __future__ import annotations

from abc import ABC
from typing import ClassVar

import torch

from fedsearch.components._params import ComponentParams, NoParams

Weights = dict[str, torch.Tensor]
"""Named tensors: a model's weights, an update, or any payload."""


class Component(ABC):
    """A named, parameterised piece that a plugin contributes.

    Every kind (compressor, architecture, dataset, ...) derives from this. A
    concrete class sets ``name`` (unique within its kind) and, when it has
    knobs, a ``Params`` model derived from ``ComponentParams`` whose fields may
    carry ``SearchRange`` or ``SearchChoices`` hints: those become search
    dimensions unless a search-space file says otherwise.

    Args:
        params: Validated parameters; the defaults of ``Params`` when omitted.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[ComponentParams]] = NoParams

    def __init__(self, params: ComponentParams | None = None) -> None:
        self.params = params if params is not None else self.Params()
