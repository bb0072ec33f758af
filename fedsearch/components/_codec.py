"""Codec components: what a payload looks like on the wire."""

from __future__ import annotations

import itertools
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch

from fedsearch.components._base import Component, Weights
from fedsearch.components._params import ComponentParams

PIPELINE_SEPARATOR = "+"
"""Joins the stage names of a codec pipeline in search spaces: ``"topk+qsgd"``."""


class Codec(Component):
    """Turns named tensors into bytes and back.

    Required: ``encode`` and ``decode``. Both ends know the model, so the
    payload need not carry names or shapes: ``decode`` receives ``like``, a
    mapping with the expected names, shapes and dtypes. The channel measures
    ``len()`` of what ``encode`` returns; a codec never counts bytes itself.

    Call order. A run owns one uplink and one downlink codec instance, shared by
    every client (build a fresh instance per run: codecs may keep state).

    * Uplink, for each participating client ``k`` of a round: the client calls
      ``encode(update, client=k)`` (``update`` is its local weights minus the
      weights it received); the channel counts the payload; the server calls
      ``decode(payload, like=update, client=k)``.
    * Downlink, ``federation.downlink = "model"``: ``encode(weights,
      client=None)`` once per round, the payload is counted once per
      recipient, ``decode(payload, like, client=None)``.
    * Downlink, ``federation.downlink = "delta"``: per recipient ``k``,
      ``encode(weights - reference_k, client=k)`` then ``decode(..., client=k)``.

    Every ``encode`` for a client is followed by the ``decode`` of that payload
    before the next ``encode`` for the same client. ``decode`` must be a pure
    function of its arguments (a sender may decode its own payload to learn what
    the receiver will see); only ``encode`` may advance state.

    State. A codec that keeps state per client (error-feedback residuals) sets
    ``stateful = True`` and keys that state by the ``client`` argument, creating
    it on the first ``encode`` for that client, so memory grows with the
    clients that take part, never with those that exist. Stateful codecs are
    refused on the downlink, where delta mode already resends what was lost.

    Composition. Codecs form pipelines (``topk`` then ``qsgd``): a codec with
    ``accepts_inner = True`` hands part of its payload (typically the values it
    keeps, as one flat tensor named ``"values"``) to ``self.inner``, the next
    codec, and falls back to its own encoding when there is none. One with
    ``requires_inner = True`` (a wrapper such as error feedback) cannot end a
    pipeline. Use ``compose_codecs`` to chain built instances.

    Args:
        params: Validated parameters; the defaults of ``Params`` when omitted.
    """

    kind: ClassVar[str] = "codec"
    accepts_inner: ClassVar[bool] = False
    requires_inner: ClassVar[bool] = False
    stateful: ClassVar[bool] = False

    def __init__(self, params: ComponentParams | None = None) -> None:
        super().__init__(params)
        self.inner: Codec | None = None

    @abstractmethod
    def encode(self, tensors: Mapping[str, torch.Tensor], *, client: int | None = None) -> bytes:
        """Serialise ``tensors`` (in their iteration order) to bytes.

        Args:
            tensors: The payload's tensors.
            client: The client at the other end (the sender on the uplink, the
                recipient on the downlink); ``None`` for a broadcast.
        """

    @abstractmethod
    def decode(
        self, payload: bytes, like: Mapping[str, torch.Tensor], *, client: int | None = None
    ) -> Weights:
        """Rebuild the tensors from ``payload``; names, shapes and dtypes follow ``like``."""

    def compose(self, inner: Codec) -> None:
        """Make ``inner`` the next stage of this codec's pipeline.

        Raises:
            ValueError: If this codec cannot be followed by another.
        """
        if not self.accepts_inner:
            raise ValueError(
                f"codec {self.name!r} cannot be followed by another codec; "
                "only a sparsifier or wrapper (accepts_inner) can come before others"
            )
        self.inner = inner

    @property
    def pipeline_name(self) -> str:
        """Stage names joined by ``+`` (``"error_feedback+topk+qsgd"``)."""
        if self.inner is None:
            return self.name
        return f"{self.name}{PIPELINE_SEPARATOR}{self.inner.pipeline_name}"


def compose_codecs(stages: Sequence[Codec]) -> Codec:
    """Chain built codecs into one pipeline and return its first stage.

    Args:
        stages: Codecs in the order they are applied when encoding.

    Raises:
        ValueError: If ``stages`` is empty, a stage that cannot be followed by
            another is not last, or the last stage needs a successor.
    """
    if not stages:
        raise ValueError("a codec pipeline needs at least one codec")
    for outer, inner in itertools.pairwise(stages):
        outer.compose(inner)
    last = stages[-1]
    if last.requires_inner:
        raise ValueError(
            f"codec {last.name!r} wraps another codec and cannot come last; "
            f"add one after it, such as [{last.name!r}, 'topk']"
        )
    return stages[0]
