"""Wire-format building blocks shared by the built-in codecs.

Every built-in codec writes ``tag`` (one byte naming the codec), ``count``
(the number of values, LEB128 varint) and then its body. Tensors travel as one
flat float32 vector: all tensors of the payload, flattened and concatenated
in iteration order (float64 inputs are rounded to float32, integers are exact
up to 2**24); ``decode`` casts back to the dtypes of ``like``.

Sorted positions (of the values a sparsifier keeps) are Golomb-Rice coded:
each gap ``position - previous - 1`` (previous of the first is -1) is split
into a quotient ``gap >> b``, written in unary (that many one bits, then a
zero), and a remainder of ``b`` bits. The remainders come first, bit-packed,
then the unary stream, so both decode with vector operations. ``b`` is
chosen per payload to minimise the size and stored in one byte.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import numpy as np
import torch

from fedsearch import FedsearchError, Weights

MAX_RICE_BITS = 40


def flatten(tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """All tensors, flattened and concatenated, as one float32 vector."""
    if not tensors:
        return torch.zeros(0)
    return torch.cat([tensor.detach().reshape(-1).float() for tensor in tensors.values()])


def unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Weights:
    """Split ``vector`` into tensors with the names, shapes and dtypes of ``like``."""
    tensors, offset = {}, 0
    for name, reference in like.items():
        count = reference.numel()
        tensors[name] = vector[offset : offset + count].reshape(reference.shape).to(reference.dtype)
        offset += count
    return tensors


def numel(like: Mapping[str, torch.Tensor]) -> int:
    """Number of values in ``like``."""
    return sum(tensor.numel() for tensor in like.values())


def varint(value: int) -> bytes:
    """LEB128 encoding of one non-negative integer."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Reader:
    """Reads a payload front to back; every read checks that enough bytes remain.

    Args:
        payload: The bytes to read.
        codec: Name of the codec reading, for error messages.
    """

    def __init__(self, payload: bytes, codec: str) -> None:
        self.data = memoryview(payload)
        self.offset = 0
        self.codec = codec

    def fail(self, problem: str) -> FedsearchError:
        """The error raised for a malformed payload."""
        return FedsearchError(
            f"{self.codec} payload is malformed ({problem}): sender and receiver disagree "
            "on the codec or the model"
        )

    def take(self, count: int) -> memoryview:
        """The next ``count`` bytes."""
        if self.offset + count > len(self.data):
            raise self.fail(f"needs {count} more bytes at offset {self.offset}")
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def byte(self) -> int:
        """The next byte as an integer."""
        return self.take(1)[0]

    def varint(self) -> int:
        """The next LEB128 integer."""
        value, shift = 0, 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise self.fail("varint longer than 64 bits")

    def float32(self) -> float:
        """The next little-endian float32."""
        return struct.unpack("<f", self.take(4))[0]

    def uint32(self) -> int:
        """The next little-endian uint32."""
        return struct.unpack("<I", self.take(4))[0]

    def rest(self) -> bytes:
        """Every byte not read yet."""
        return bytes(self.take(len(self.data) - self.offset))

    def finish(self) -> None:
        """Check that the whole payload was read."""
        if self.offset != len(self.data):
            raise self.fail(f"{len(self.data) - self.offset} trailing bytes")


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Non-negative integers below ``2**bits``, ``bits`` each, least significant bit first."""
    if bits == 0 or values.size == 0:
        return b""
    shifts = np.arange(bits, dtype=np.uint64)
    matrix = (values.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)
    return np.packbits(matrix.astype(np.uint8).reshape(-1), bitorder="little").tobytes()


def unpack_bits(reader: Reader, count: int, bits: int) -> np.ndarray:
    """Read ``count`` integers written by :func:`pack_bits`."""
    if bits == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    raw = np.frombuffer(reader.take((count * bits + 7) // 8), dtype=np.uint8)
    matrix = np.unpackbits(raw, count=count * bits, bitorder="little").reshape(count, bits)
    return (matrix.astype(np.int64) << np.arange(bits, dtype=np.int64)).sum(axis=1)


def _rice_bits(gaps: np.ndarray) -> int:
    candidates = range(min(MAX_RICE_BITS, int(gaps.max()).bit_length()) + 1)
    sizes = [int((gaps >> b).sum()) + gaps.size * (1 + b) for b in candidates]
    return int(np.argmin(sizes))


def encode_positions(positions: np.ndarray) -> bytes:
    """Golomb-Rice code of increasing non-negative ``positions`` (see the module docstring)."""
    if positions.size == 0:
        return b""
    gaps = np.diff(positions.astype(np.int64), prepend=-1) - 1
    bits = _rice_bits(gaps)
    quotients = gaps >> bits
    unary = np.ones(int(quotients.sum()) + gaps.size, dtype=np.uint8)
    unary[np.cumsum(quotients + 1) - 1] = 0
    remainders = pack_bits(gaps & ((1 << bits) - 1), bits)
    return bytes([bits]) + remainders + np.packbits(unary, bitorder="little").tobytes()


def decode_positions(reader: Reader, count: int, size: int) -> np.ndarray:
    """Read ``count`` positions written by :func:`encode_positions`; each must be below ``size``."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    bits = reader.byte()
    if bits > MAX_RICE_BITS:
        raise reader.fail(f"Rice parameter {bits} is out of range")
    remainders = unpack_bits(reader, count, bits)
    start = reader.offset
    raw = np.frombuffer(reader.data[start:], dtype=np.uint8)
    zeros = np.flatnonzero(np.unpackbits(raw, bitorder="little") == 0)[:count]
    if zeros.size < count:
        raise reader.fail("index stream is truncated")
    reader.take(int(zeros[-1]) // 8 + 1)
    quotients = np.diff(zeros, prepend=-1) - 1
    positions = np.cumsum((quotients << bits) + remainders + 1) - 1
    if int(positions[-1]) >= size:
        raise reader.fail(f"position {int(positions[-1])} is past the {size} values")
    return positions
