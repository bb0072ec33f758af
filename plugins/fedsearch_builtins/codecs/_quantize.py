"""Quantizing codecs: QSGD stochastic quantization and scaled signs."""

from __future__ import annotations

import math
import struct
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from fedsearch import ComponentParams, SearchRange
from fedsearch_builtins.codecs._vector import VectorCodec
from fedsearch_builtins.codecs._wire import Reader, pack_bits, unpack_bits


class QsgdParams(ComponentParams):
    """Knobs of QSGD."""

    levels: Annotated[int, Field(ge=1, le=255), SearchRange(1, 16, log=True)] = 4
    norm: Literal["l2", "max"] = "l2"
    seed: int = 0


class QsgdCodec(VectorCodec):
    """QSGD stochastic quantization (Alistarh et al. 2017) with ``s = levels``.

    Each value ``v_i`` becomes ``norm * sign(v_i) * l_i / s`` where ``l_i`` is
    ``floor(s |v_i| / norm)`` or one more, chosen at random so that the result
    is unbiased. ``norm`` is the vector's L2 norm (the paper's choice) or its
    largest magnitude (``norm = "max"``, lower variance).

    Bound: unbiased, and ``|decoded_i - v_i| < norm / s`` for every value.
    Body: the norm (float32), then ``sign * l + s`` in ``ceil(log2(2s + 1))``
    bits per value.
    """

    name = "qsgd"
    description = "QSGD stochastic quantization (s levels)"
    tag = 6
    Params = QsgdParams
    params: QsgdParams

    def __init__(self, params: QsgdParams | None = None) -> None:
        super().__init__(params)
        self._generator = torch.Generator().manual_seed(self.params.seed)

    @property
    def bits(self) -> int:
        """Bits per value."""
        return math.ceil(math.log2(2 * self.params.levels + 1))

    def encode_vector(self, vector: torch.Tensor, client: int | None) -> bytes:
        """Norm, then the packed signed levels."""
        levels = self.params.levels
        magnitude = vector.abs()
        if vector.numel() == 0:
            norm = 0.0
        elif self.params.norm == "l2":
            norm = float(vector.double().norm())
        else:
            norm = float(magnitude.max())
        norm = float(np.float32(norm))
        if norm == 0.0 or not math.isfinite(norm):
            codes = torch.full_like(vector, levels, dtype=torch.int64)
            return struct.pack("<f", 0.0) + pack_bits(codes.numpy(), self.bits)
        scaled = (magnitude.double() / norm * levels).clamp(max=levels)
        floor = scaled.floor()
        noise = torch.rand(vector.numel(), generator=self._generator, dtype=torch.float64)
        level = (floor + (noise < scaled - floor).double()).clamp(max=levels).long()
        codes = torch.where(vector < 0, -level, level) + levels
        return struct.pack("<f", norm) + pack_bits(codes.numpy(), self.bits)

    def decode_vector(self, reader: Reader, count: int, client: int | None) -> torch.Tensor:
        """``norm * (code - s) / s``."""
        norm = reader.float32()
        levels = self.params.levels
        codes = unpack_bits(reader, count, self.bits)
        if int(codes.max(initial=0)) > 2 * levels:
            raise reader.fail(f"level code above {2 * levels}")
        signed = torch.from_numpy(codes - levels).double()
        return (signed * norm / levels).float()


class SignCodec(VectorCodec):
    """signSGD with a scale: one bit per value plus one float32.

    Every value becomes ``scale * sign(v_i)`` (zero counts as positive) with
    ``scale = mean |v_i|``, the scaled sign of EF-signSGD (Karimireddy et al.
    2019); pair it with ``error_feedback``.

    Bound: the sign of every nonzero value is exact and every decoded magnitude
    equals ``mean |v|`` (to float32 rounding). Body: scale, then 1 bit per value.
    """

    name = "sign"
    description = "signSGD with a scale (1 bit per value)"
    tag = 7

    def encode_vector(self, vector: torch.Tensor, client: int | None) -> bytes:
        """Mean magnitude, then the sign bits."""
        scale = float(vector.abs().double().mean()) if vector.numel() else 0.0
        negative = (vector < 0).numpy()
        return struct.pack("<f", scale) + np.packbits(negative, bitorder="little").tobytes()

    def decode_vector(self, reader: Reader, count: int, client: int | None) -> torch.Tensor:
        """``scale * (+1 or -1)``."""
        scale = reader.float32()
        raw = np.frombuffer(reader.take((count + 7) // 8), dtype=np.uint8)
        negative = np.unpackbits(raw, count=count, bitorder="little").astype(np.float32)
        return torch.from_numpy(1.0 - 2.0 * negative) * scale
