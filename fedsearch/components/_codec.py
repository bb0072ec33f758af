"""Codec components: what a payload looks like on the wire."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import torch

from fedsearch.components._base import Component, Weights


class Codec(Component):
    """Turns named tensors into bytes and back.

    Required: ``encode`` and ``decode``. Both ends know the model, so the
    payload need not carry names or shapes: ``decode`` receives ``like``, a
    mapping with the expected names, shapes and dtypes. The channel measures
    ``len()`` of what ``encode`` returns; a codec never counts bytes itself.
    """

    kind: ClassVar[str] = "codec"

    @abstractmethod
    def encode(self, tensors: Mapping[str, torch.Tensor]) -> bytes:
        """Serialise ``tensors`` (in their iteration order) to bytes."""

    @abstractmethod
    def decode(self, payload: bytes, like: Mapping[str, torch.Tensor]) -> Weights:
        """Rebuild the tensors from ``payload``; names, shapes and dtypes follow ``like``."""
