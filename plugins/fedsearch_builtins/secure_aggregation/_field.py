"""Client updates as vectors in the ring of integers modulo ``2**bits``, and the masks' PRG.

Quantization: each value is clipped to ``[-clip, clip]`` and rounded to one of
``2 * levels + 1`` integers ``-levels .. levels`` (``levels = 2**(q - 1) - 1``),
multiplied by the client's integer weight, and taken modulo ``2**bits``. The
weight travels as one more element, so the server learns only sums. Sums
modulo ``2**bits`` are exact as long as the true signed sum stays inside
``(-2**(bits - 1), 2**(bits - 1))``, which ``FieldSpec.check`` guarantees.

The pseudo-random generator expanding a 32-byte seed into a mask is AES-256 in
counter mode from ``cryptography`` (a keystream of 8 bytes per element, reduced
modulo ``2**bits``): both ends derive the same mask from the same seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fedsearch import Weights

_ZERO_NONCE = bytes(16)


@dataclass(frozen=True)
class FieldSpec:
    """The ring and the quantization grid.

    Attributes:
        bits: Elements are integers modulo ``2**bits`` (at most 62).
        quantization_bits: Values are rounded to ``2**(q-1) - 1`` levels a side.
        clip: Values are clipped to ``[-clip, clip]`` first.
        max_weight: A client's weight (its examples) is capped at this.
    """

    bits: int
    quantization_bits: int
    clip: float
    max_weight: int

    @property
    def modulus_mask(self) -> np.uint64:
        """``2**bits - 1``: reduces a uint64 modulo ``2**bits``."""
        return np.uint64((1 << self.bits) - 1)

    @property
    def levels(self) -> int:
        """Quantization levels on each side of 0."""
        return (1 << (self.quantization_bits - 1)) - 1

    @property
    def element_bytes(self) -> int:
        """Bytes of one element on the wire."""
        return (self.bits + 7) // 8

    def check(self, clients_per_round: int) -> None:
        """Refuse a ring too small for the weighted sum of ``clients_per_round`` clients."""
        largest = clients_per_round * self.max_weight * self.levels
        if largest >= 1 << (self.bits - 1):
            raise ValueError(
                f"{clients_per_round} clients x max_weight {self.max_weight} x "
                f"{self.levels} levels can reach {largest}, which wraps around modulo "
                f"2**{self.bits}; raise field_bits or lower quantization_bits or max_weight"
            )

    def weight(self, num_examples: int) -> int:
        """A client's integer weight: its examples, capped at ``max_weight``."""
        return max(1, min(int(num_examples), self.max_weight))

    def quantize(self, update: Mapping[str, torch.Tensor], weight: int) -> np.ndarray:
        """``weight * round(clip(update) / clip * levels)`` then ``weight``, modulo ``2**bits``."""
        flat = flatten(update)
        grid = np.rint(np.clip(flat, -self.clip, self.clip) / self.clip * self.levels)
        signed = np.append(grid.astype(np.int64) * int(weight), int(weight))
        return signed.astype(np.uint64) & self.modulus_mask

    def signed(self, vector: np.ndarray) -> np.ndarray:
        """Elements as signed integers in ``[-2**(bits-1), 2**(bits-1))``."""
        values = (vector & self.modulus_mask).astype(np.int64)
        return np.where(values >= 1 << (self.bits - 1), values - (1 << self.bits), values)

    def dequantize_mean(self, total: np.ndarray, like: Mapping[str, torch.Tensor]) -> Weights:
        """The weighted mean update from the sum of quantized vectors, and the total weight."""
        signed = self.signed(total)
        weight = float(signed[-1])
        values = signed[:-1].astype(np.float64) * (self.clip / self.levels) / weight
        return unflatten(values, like)

    def encode(self, vector: np.ndarray) -> bytes:
        """Little-endian elements of ``element_bytes`` bytes each."""
        raw = vector.astype("<u8").view(np.uint8).reshape(-1, 8)
        return raw[:, : self.element_bytes].tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        """The inverse of ``encode``."""
        narrow = np.frombuffer(payload, dtype=np.uint8).reshape(-1, self.element_bytes)
        wide = np.zeros((narrow.shape[0], 8), dtype=np.uint8)
        wide[:, : self.element_bytes] = narrow
        return wide.reshape(-1).view("<u8").astype(np.uint64)

    def mask(self, seed: bytes, length: int) -> np.ndarray:
        """``length`` pseudo-random elements expanded from a 32-byte ``seed`` (AES-256-CTR)."""
        encryptor = Cipher(algorithms.AES(seed), modes.CTR(_ZERO_NONCE)).encryptor()
        stream = encryptor.update(bytes(8 * length)) + encryptor.finalize()
        return np.frombuffer(stream, dtype="<u8").astype(np.uint64) & self.modulus_mask


def flatten(update: Mapping[str, torch.Tensor]) -> np.ndarray:
    """Every tensor of ``update`` as float64, concatenated in iteration order."""
    return np.concatenate(
        [tensor.detach().double().reshape(-1).cpu().numpy() for tensor in update.values()]
    )


def unflatten(values: np.ndarray, like: Mapping[str, torch.Tensor]) -> Weights:
    """Split ``values`` back into tensors shaped (and typed) like ``like``."""
    out: Weights = {}
    offset = 0
    for name, tensor in like.items():
        size = tensor.numel()
        chunk = torch.from_numpy(values[offset : offset + size].copy()).reshape(tensor.shape)
        out[name] = chunk.to(tensor.dtype)
        offset += size
    return out
