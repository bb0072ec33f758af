"""Dense codecs: every value, as float32, float16 or bfloat16."""

from __future__ import annotations

import numpy as np
import torch

from fedsearch_builtins.codecs._vector import VectorCodec, raw_float32, read_float32
from fedsearch_builtins.codecs._wire import Reader

FLOAT16_MAX = 65504.0


class Float32Codec(VectorCodec):
    """Dense float32: the uncompressed baseline.

    Bound: exact for float32, float16, bfloat16 and integer tensors (integers up
    to 2**24); float64 values are rounded to the nearest float32.
    Body: 4 bytes per value.
    """

    name = "float32"
    description = "dense float32 (lossless baseline)"
    tag = 1

    def encode_vector(self, vector: torch.Tensor, client: int | None) -> bytes:
        """Raw little-endian float32."""
        return raw_float32(vector)

    def decode_vector(self, reader: Reader, count: int, client: int | None) -> torch.Tensor:
        """Read raw float32."""
        return read_float32(reader, count)


class Float16Codec(VectorCodec):
    """Dense IEEE half precision.

    Bound: round to nearest float16, so ``|decoded - x| <= 2**-11 * |x|`` for
    ``2**-14 <= |x| <= 65504`` and ``<= 2**-25`` below that (subnormals);
    values beyond +-65504 saturate to +-65504. Body: 2 bytes per value.
    """

    name = "float16"
    description = "dense float16"
    tag = 2

    def encode_vector(self, vector: torch.Tensor, client: int | None) -> bytes:
        """Clamp to the float16 range and round."""
        clamped = vector.clamp(-FLOAT16_MAX, FLOAT16_MAX)
        return clamped.numpy().astype("<f2").tobytes()

    def decode_vector(self, reader: Reader, count: int, client: int | None) -> torch.Tensor:
        """Read float16 values as float32."""
        raw = np.frombuffer(reader.take(2 * count), dtype="<f2")
        return torch.from_numpy(raw.astype(np.float32))


class BFloat16Codec(VectorCodec):
    """Dense bfloat16: float32's range with an 8-bit significand.

    Bound: round to nearest even, so ``|decoded - x| <= 2**-8 * |x|`` for
    normal float32 values. Body: 2 bytes per value.
    """

    name = "bfloat16"
    description = "dense bfloat16"
    tag = 3

    def encode_vector(self, vector: torch.Tensor, client: int | None) -> bytes:
        """The upper 16 bits of each rounded value."""
        bits = vector.to(torch.bfloat16).view(torch.int16).numpy()
        return bits.astype("<i2").tobytes()

    def decode_vector(self, reader: Reader, count: int, client: int | None) -> torch.Tensor:
        """Read bfloat16 values as float32."""
        raw = np.frombuffer(reader.take(2 * count), dtype="<i2").astype(np.int16)
        return torch.from_numpy(raw).view(torch.bfloat16).float()
