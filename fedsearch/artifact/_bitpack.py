"""Bit packing of unsigned integers of 1 to 16 bits.

Layout: value ``i`` occupies bits ``i * bits`` to ``(i + 1) * bits - 1`` of the
output, least significant bit first, and bit ``k`` of the stream is bit
``k % 8`` of byte ``k // 8`` (little-endian bit order). The last byte is padded
with zero bits, so ``n`` values take exactly ``ceil(n * bits / 8)`` bytes.
"""

from __future__ import annotations

import numpy as np

MIN_BITS = 1
MAX_BITS = 16


def check_bits(bits: int) -> int:
    """Return ``bits`` if it is a supported code width.

    Args:
        bits: Width of one code in bits.

    Returns:
        The same width, as an ``int``.

    Raises:
        ValueError: If ``bits`` is not an integer in 1..16.
    """
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
        raise ValueError(f"bits must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be in {MIN_BITS}..{MAX_BITS}, got {bits}")
    return int(bits)


def packed_nbytes(count: int, bits: int) -> int:
    """Number of bytes ``count`` values take when packed at ``bits`` bits each."""
    return (count * bits + 7) // 8


def pack_uints(values: np.ndarray, bits: int) -> bytes:
    """Pack unsigned integers into a dense bit stream.

    Args:
        values: Integer array (any shape, flattened in C order) with every
            element in ``[0, 2**bits - 1]``.
        bits: Width of one value in bits, 1..16.

    Returns:
        ``ceil(values.size * bits / 8)`` bytes.

    Raises:
        ValueError: If ``bits`` is unsupported, ``values`` is not an integer
            array, or a value does not fit in ``bits`` bits.
    """
    bits = check_bits(bits)
    flat = np.asarray(values).reshape(-1)
    if not np.issubdtype(flat.dtype, np.integer):
        raise ValueError(f"can only pack integer arrays, got dtype {flat.dtype}")
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= 1 << bits):
        raise ValueError(
            f"values must be in [0, {(1 << bits) - 1}] to pack at {bits} bits, "
            f"got min {int(flat.min())}, max {int(flat.max())}"
        )
    if bits == 8:
        return flat.astype(np.uint8).tobytes()
    if bits == MAX_BITS:
        return flat.astype("<u2").tobytes()
    value_bytes = flat.astype("<u2").view(np.uint8).reshape(-1, 2)
    bit_matrix = np.unpackbits(value_bytes, axis=1, bitorder="little")
    return np.packbits(bit_matrix[:, :bits], bitorder="little").tobytes()


def unpack_uints(data: bytes | memoryview, count: int, bits: int) -> np.ndarray:
    """Unpack ``count`` values written by :func:`pack_uints`.

    Args:
        data: Packed bytes; only the first ``packed_nbytes(count, bits)`` are read.
        count: Number of values to read.
        bits: Width of one value in bits, 1..16.

    Returns:
        A ``uint16`` array of shape ``(count,)``.

    Raises:
        ValueError: If ``bits`` is unsupported or ``data`` is too short.
    """
    bits = check_bits(bits)
    needed = packed_nbytes(count, bits)
    if count < 0 or len(data) < needed:
        raise ValueError(f"need {needed} bytes for {count} values of {bits} bits, got {len(data)}")
    raw = np.frombuffer(data, dtype=np.uint8, count=needed)
    if bits == 8:
        return raw.astype(np.uint16)
    if bits == MAX_BITS:
        return raw.view("<u2").astype(np.uint16)
    bit_matrix = np.unpackbits(raw, count=count * bits, bitorder="little").reshape(count, bits)
    padded = np.zeros((count, MAX_BITS), dtype=np.uint8)
    padded[:, :bits] = bit_matrix
    packed = np.packbits(padded, axis=1, bitorder="little")
    return packed.view("<u2").reshape(count).astype(np.uint16)
