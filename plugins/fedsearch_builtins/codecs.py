"""Dense payload codecs: raw float32 and float16."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import torch

from fedsearch import Codec, FedsearchError, Registrar, Weights, hookimpl


class DenseCodec(Codec):
    """Every tensor, flattened and concatenated, as little-endian floats of one dtype."""

    wire_dtype: ClassVar[np.dtype]

    def encode(self, tensors: Mapping[str, torch.Tensor]) -> bytes:
        """Concatenate all tensors in ``wire_dtype``."""
        if not tensors:
            return b""
        flat = torch.cat([tensor.detach().reshape(-1).float() for tensor in tensors.values()])
        return flat.numpy().astype(self.wire_dtype).tobytes()

    def decode(self, payload: bytes, like: Mapping[str, torch.Tensor]) -> Weights:
        """Split the payload back into tensors shaped like ``like``."""
        expected = sum(tensor.numel() for tensor in like.values()) * self.wire_dtype.itemsize
        if len(payload) != expected:
            raise FedsearchError(
                f"{self.name} payload has {len(payload)} bytes, expected {expected}: "
                "sender and receiver disagree on the model"
            )
        flat = torch.from_numpy(np.frombuffer(payload, dtype=self.wire_dtype).astype(np.float32))
        tensors, offset = {}, 0
        for name, reference in like.items():
            count = reference.numel()
            tensors[name] = (
                flat[offset : offset + count].reshape(reference.shape).to(reference.dtype)
            )
            offset += count
        return tensors


class Float32Codec(DenseCodec):
    """Lossless float32 payloads: the uncompressed baseline."""

    name = "float32"
    description = "dense float32 (lossless baseline)"
    wire_dtype = np.dtype("<f4")


class Float16Codec(DenseCodec):
    """Half-precision payloads: half the bytes, rounding to float16."""

    name = "float16"
    description = "dense float16"
    wire_dtype = np.dtype("<f2")


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the dense codecs."""
    register.codec(Float32Codec)
    register.codec(Float16Codec)
