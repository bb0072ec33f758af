"""Sparsifying codecs (top-k, random-k, sparse ternary) and error feedback."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Annotated, ClassVar

import numpy as np
import torch
from pydantic import Field

from fedsearch import Codec, ComponentParams, SearchRange, Weights
from fedsearch_builtins.codecs._quantize import SignCodec
from fedsearch_builtins.codecs._vector import ValuesStage
from fedsearch_builtins.codecs._wire import Reader, decode_positions, encode_positions, varint

Fraction = Annotated[float, Field(gt=0.0, le=1.0), SearchRange(0.001, 0.1, log=True)]


class SparsifierParams(ComponentParams):
    """Knobs of a sparsifier: the share of values kept."""

    fraction: Fraction = 0.01


def kept_count(fraction: float, size: int) -> int:
    """``ceil(fraction * size)``, at least one value of a non-empty payload."""
    return min(size, max(1, math.ceil(fraction * size))) if size else 0


class TopKCodec(ValuesStage):
    """Top-k sparsification: the ``fraction`` of values largest in magnitude.

    The positions are Golomb-Rice coded; the kept values go to the next codec of
    the pipeline (float32 when there is none). Pair with ``error_feedback`` so
    what is dropped is sent later.

    Bound: the ``k = ceil(fraction * n)`` values of largest magnitude are
    decoded as the next stage promises (exactly, without one); all others are 0.
    """

    name = "topk"
    description = "top-k sparsification (Rice-coded positions)"
    tag = 4
    Params = SparsifierParams
    params: SparsifierParams

    def select(self, vector: torch.Tensor, count: int) -> np.ndarray:
        """Sorted positions of the ``count`` largest magnitudes."""
        positions = torch.topk(vector.abs(), count, sorted=False).indices
        return np.sort(positions.numpy())

    def encode_vector(self, vector: torch.Tensor, client: int | None) -> bytes:
        """Count, positions, values."""
        count = kept_count(self.params.fraction, vector.numel())
        positions = self.select(vector, count)
        values = vector[torch.from_numpy(positions)]
        return varint(count) + encode_positions(positions) + self.encode_values(values, client)

    def decode_vector(self, reader: Reader, count: int, client: int | None) -> torch.Tensor:
        """Scatter the kept values into zeros."""
        kept = reader.varint()
        if kept > count:
            raise reader.fail(f"{kept} kept values out of {count}")
        positions = decode_positions(reader, kept, count)
        vector = torch.zeros(count)
        vector[torch.from_numpy(positions)] = self.decode_values(reader, kept, client)
        return vector


class SparseTernaryCodec(TopKCodec):
    """Sparse ternary compression (Sattler et al. 2019): top-k, then scaled signs.

    The kept values become ``+-mu`` with ``mu`` their mean magnitude: top-k
    followed by ``sign``. Sattler et al. accumulate what is dropped, so list it
    after ``error_feedback``.

    Bound: the top-k positions are exact, their signs are exact, every kept
    magnitude is ``mu``; all others are 0. Body: positions, ``mu``, 1 bit per
    kept value.
    """

    name = "stc"
    description = "sparse ternary compression (top-k + scaled signs)"
    tag = 8
    accepts_inner: ClassVar[bool] = False

    def __init__(self, params: SparsifierParams | None = None) -> None:
        super().__init__(params)
        self._signs = SignCodec()

    def values_codec(self) -> Codec:
        """Always the scaled signs."""
        return self._signs


class RandomKParams(SparsifierParams):
    """Knobs of random-k."""

    seed: int = 0


class RandomKCodec(TopKCodec):
    """Random-k sparsification: a uniformly random ``fraction`` of the values.

    The positions are not sent: the header carries a 32-bit seed from which the
    receiver draws the same positions. Values are not rescaled (biased, like
    top-k); pair with ``error_feedback``.

    Bound: ``k = ceil(fraction * n)`` values at random positions are decoded as
    the next stage promises (exactly, without one); all others are 0.
    """

    name = "randk"
    description = "random-k sparsification (positions from a seed)"
    tag = 5
    Params = RandomKParams
    params: RandomKParams

    def __init__(self, params: RandomKParams | None = None) -> None:
        super().__init__(params)
        self._seeds = np.random.default_rng(self.params.seed)

    @staticmethod
    def draw(seed: int, count: int, size: int) -> np.ndarray:
        """The sorted positions both ends derive from ``seed``."""
        return np.sort(np.random.default_rng(seed).choice(size, size=count, replace=False))

    def encode_vector(self, vector: torch.Tensor, client: int | None) -> bytes:
        """Count, seed, values."""
        count = kept_count(self.params.fraction, vector.numel())
        seed = int(self._seeds.integers(0, 2**32))
        positions = self.draw(seed, count, vector.numel())
        values = vector[torch.from_numpy(positions)]
        return varint(count) + struct.pack("<I", seed) + self.encode_values(values, client)

    def decode_vector(self, reader: Reader, count: int, client: int | None) -> torch.Tensor:
        """Redraw the positions and scatter the values."""
        kept = reader.varint()
        if kept > count:
            raise reader.fail(f"{kept} kept values out of {count}")
        positions = self.draw(reader.uint32(), kept, count)
        vector = torch.zeros(count)
        vector[torch.from_numpy(positions)] = self.decode_values(reader, kept, client)
        return vector


class ErrorFeedbackCodec(Codec):
    """Error feedback: what the rest of the pipeline loses is added to the next update.

    For client ``k``: ``x' = x + e_k``; the payload is the next stage's encoding
    of ``x'``; ``e_k = x' - decode(payload)``. The residual ``e_k`` is created on
    the first ``encode`` for client ``k`` (one float32 copy of the update per
    participating client) and lives as long as the codec. Adds no bytes; must
    be followed by another codec and comes first in a pipeline. Uplink only.

    Bound: decoding is the next stage's; over rounds, the sum of what is
    decoded trails the sum of the true updates by exactly the residual.
    """

    name = "error_feedback"
    description = "error feedback (per-client residuals) around the next codecs"
    accepts_inner: ClassVar[bool] = True
    requires_inner: ClassVar[bool] = True
    stateful: ClassVar[bool] = True

    def __init__(self, params: ComponentParams | None = None) -> None:
        super().__init__(params)
        self.residuals: dict[int | None, Weights] = {}

    @property
    def state_bytes(self) -> int:
        """Memory held by the residuals."""
        return sum(
            tensor.numel() * tensor.element_size()
            for residual in self.residuals.values()
            for tensor in residual.values()
        )

    def _next(self) -> Codec:
        if self.inner is None:
            raise ValueError("error_feedback must be followed by another codec")
        return self.inner

    def encode(self, tensors: Mapping[str, torch.Tensor], *, client: int | None = None) -> bytes:
        """Encode the update plus this client's residual; keep the new residual."""
        inner = self._next()
        residual = self.residuals.get(client)
        corrected = {
            name: tensor.detach().float() + (residual[name] if residual else 0.0)
            for name, tensor in tensors.items()
        }
        payload = inner.encode(corrected, client=client)
        decoded = inner.decode(payload, like=corrected, client=client)
        self.residuals[client] = {name: corrected[name] - decoded[name] for name in corrected}
        return payload

    def decode(
        self, payload: bytes, like: Mapping[str, torch.Tensor], *, client: int | None = None
    ) -> Weights:
        """The next stage's decoding."""
        return self._next().decode(payload, like=like, client=client)
