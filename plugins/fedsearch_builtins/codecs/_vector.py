"""The base of the built-in codecs: one flat float32 vector, a tag and a count."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import torch

from fedsearch import Codec, Weights
from fedsearch_builtins.codecs._wire import Reader, flatten, numel, unflatten, varint

VALUES = "values"
"""Name of the one tensor a sparsifier hands to the next codec of its pipeline."""


class VectorCodec(Codec):
    """A codec of the flattened payload: ``tag`` byte, varint count, then the body.

    Subclasses implement ``encode_vector`` and ``decode_vector``.
    """

    tag: ClassVar[int]

    def encode(self, tensors: Mapping[str, torch.Tensor], *, client: int | None = None) -> bytes:
        """Flatten ``tensors`` and encode them behind the tag and the count."""
        vector = flatten(tensors)
        return bytes([self.tag]) + varint(vector.numel()) + self.encode_vector(vector, client)

    def decode(
        self, payload: bytes, like: Mapping[str, torch.Tensor], *, client: int | None = None
    ) -> Weights:
        """Check the tag and the count against ``like``, decode the body, reshape."""
        reader = Reader(payload, self.name)
        tag = reader.byte()
        if tag != self.tag:
            raise reader.fail(f"tag {tag}, expected {self.tag}")
        count, expected = reader.varint(), numel(like)
        if count != expected:
            raise reader.fail(f"{count} values, expected {expected}")
        vector = self.decode_vector(reader, count, client)
        reader.finish()
        return unflatten(vector, like)

    @abstractmethod
    def encode_vector(self, vector: torch.Tensor, client: int | None) -> bytes:
        """The body for a flat float32 ``vector``."""

    @abstractmethod
    def decode_vector(self, reader: Reader, count: int, client: int | None) -> torch.Tensor:
        """Read the body of ``count`` values from ``reader`` (and nothing more)."""


def raw_float32(values: torch.Tensor) -> bytes:
    """Little-endian float32 bytes of a flat tensor."""
    return values.numpy().astype("<f4").tobytes()


def read_float32(reader: Reader, count: int) -> torch.Tensor:
    """Read ``count`` little-endian float32 values."""
    raw = np.frombuffer(reader.take(4 * count), dtype="<f4")
    return torch.from_numpy(raw.astype(np.float32))


class ValuesStage(VectorCodec):
    """A codec that keeps some values and hands them to the next stage.

    Without a next stage the kept values travel as raw float32; with one, its
    payload (for a tensor named ``"values"``) ends this codec's body.
    """

    accepts_inner: ClassVar[bool] = True

    def values_codec(self) -> Codec | None:
        """The codec of the kept values: the next stage, or None for raw float32."""
        return self.inner

    def encode_values(self, values: torch.Tensor, client: int | None) -> bytes:
        """The kept values, through the next stage or as float32."""
        codec = self.values_codec()
        if codec is None:
            return raw_float32(values)
        return codec.encode({VALUES: values}, client=client)

    def decode_values(self, reader: Reader, count: int, client: int | None) -> torch.Tensor:
        """Read ``count`` kept values (the rest of the payload when a stage follows)."""
        codec = self.values_codec()
        if codec is None:
            return read_float32(reader, count)
        decoded = codec.decode(reader.rest(), like={VALUES: torch.empty(count)}, client=client)
        return decoded[VALUES].float()
