"""Zero-pattern encodings: which elements of a flattened tensor are stored.

Three encodings exist; a record stores the pattern, then only the values it
marks as nonzero:

* ``dense``: no pattern, every value is stored.
* ``bitmap``: one bit per element (little-endian bit order, padded with zero
  bits to whole bytes), set where the element is nonzero.
* ``index``: the flat positions of the nonzero elements as gaps, each gap being
  ``position - previous_position - 1`` (the previous position of the first one
  is -1, so adjacent nonzeros cost a zero gap), LEB128 varint-coded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DENSE = "dense"
BITMAP = "bitmap"
INDEX = "index"
ENCODINGS: tuple[str, ...] = (DENSE, BITMAP, INDEX)
"""All encodings, in tie-breaking order."""

_GROUP_BITS = 7
_MAX_GROUPS = 10  # enough for any 64-bit value


def varint_group_counts(values: np.ndarray) -> np.ndarray:
    """Number of LEB128 bytes each value takes.

    Args:
        values: Non-negative integers below ``2**63``.

    Returns:
        An ``int64`` array of the same shape, every entry in 1..10.
    """
    unsigned = np.asarray(values).astype(np.uint64)
    counts = np.ones(unsigned.shape, dtype=np.int64)
    for group in range(1, _MAX_GROUPS):
        counts += unsigned >= np.uint64(1 << (_GROUP_BITS * group))
    return counts


def encode_varints(values: np.ndarray) -> bytes:
    """LEB128-encode non-negative integers, vectorised.

    Args:
        values: Non-negative integers below ``2**63``, flattened in C order.

    Returns:
        The concatenated varints.
    """
    unsigned = np.asarray(values).reshape(-1).astype(np.uint64)
    if unsigned.size == 0:
        return b""
    counts = varint_group_counts(unsigned)
    group_index = np.arange(int(counts.max()))
    shifts = (group_index * _GROUP_BITS).astype(np.uint64)
    groups = ((unsigned[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    groups[group_index < counts[:, None] - 1] |= 0x80
    return groups[group_index < counts[:, None]].tobytes()


def decode_varints(data: bytes | memoryview, count: int) -> tuple[np.ndarray, int]:
    """Decode the first ``count`` LEB128 varints of ``data``.

    Args:
        data: Bytes starting with the varints; anything after them is ignored.
        count: Number of varints to read.

    Returns:
        The values as ``uint64`` and the number of bytes they occupied.

    Raises:
        ValueError: If ``data`` ends before ``count`` varints or one is longer
            than 10 bytes.
    """
    if count == 0:
        return np.zeros(0, dtype=np.uint64), 0
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw < 0x80)[:count]
    if ends.size < count:
        raise ValueError(f"varint list is truncated: found {ends.size} of {count} values")
    used = int(ends[-1]) + 1
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if int(lengths.max()) > _MAX_GROUPS:
        raise ValueError(f"varint longer than {_MAX_GROUPS} bytes")
    group_index = np.arange(used) - np.repeat(starts, lengths)
    shifts = (group_index * _GROUP_BITS).astype(np.uint64)
    shifted = (raw[:used] & 0x7F).astype(np.uint64) << shifts
    return np.bitwise_or.reduceat(shifted, starts), used


def _gaps(positions: np.ndarray) -> np.ndarray:
    return np.diff(positions, prepend=-1) - 1


def encode_bitmap(positions: np.ndarray, size: int) -> bytes:
    """Bitmap of ``size`` bits with the bits at ``positions`` set."""
    mask = np.zeros(size, dtype=bool)
    mask[positions] = True
    return np.packbits(mask, bitorder="little").tobytes()


def decode_bitmap(data: bytes | memoryview, size: int) -> tuple[np.ndarray, int]:
    """Positions of the set bits of a ``size``-bit bitmap, and its length in bytes.

    Raises:
        ValueError: If ``data`` is shorter than the bitmap.
    """
    nbytes = (size + 7) // 8
    if len(data) < nbytes:
        raise ValueError(f"bitmap needs {nbytes} bytes, got {len(data)}")
    raw = np.frombuffer(data, dtype=np.uint8, count=nbytes)
    mask = np.unpackbits(raw, count=size, bitorder="little").astype(bool)
    return np.flatnonzero(mask), nbytes


def encode_index(positions: np.ndarray) -> bytes:
    """Varint-coded gaps between increasing flat ``positions``."""
    return encode_varints(_gaps(positions))


def decode_index(data: bytes | memoryview, count: int, size: int) -> tuple[np.ndarray, int]:
    """Decode ``count`` positions written by :func:`encode_index`.

    Args:
        data: Bytes starting with the gaps.
        count: Number of positions.
        size: Number of elements of the tensor; every position must be below it.

    Returns:
        The positions as ``int64`` and the number of bytes they occupied.

    Raises:
        ValueError: If the gaps are truncated or point past ``size``.
    """
    gaps, used = decode_varints(data, count)
    if count and int(gaps.max()) >= size:
        raise ValueError(f"index gap {int(gaps.max())} points past the {size} elements")
    positions = np.cumsum(gaps.astype(np.int64) + 1) - 1
    if count and int(positions[-1]) >= size:
        raise ValueError(f"index position {int(positions[-1])} is past the {size} elements")
    return positions, used


def encode_pattern(encoding: str, positions: np.ndarray, size: int) -> bytes:
    """The zero pattern of ``encoding`` for nonzeros at ``positions`` of ``size`` elements."""
    if encoding == DENSE:
        return b""
    if encoding == BITMAP:
        return encode_bitmap(positions, size)
    if encoding == INDEX:
        return encode_index(positions)
    raise ValueError(f"unknown zero-pattern encoding {encoding!r}; expected one of {ENCODINGS}")


def decode_pattern(
    encoding: str, data: bytes | memoryview, count: int, size: int
) -> tuple[np.ndarray | None, int]:
    """Decode a zero pattern.

    Args:
        encoding: One of :data:`ENCODINGS`.
        data: Bytes starting with the pattern.
        count: Number of nonzero elements.
        size: Number of elements.

    Returns:
        The flat positions of the nonzeros (``None`` for ``dense``: all of
        them) and the number of bytes the pattern occupied.

    Raises:
        ValueError: If the pattern is truncated, inconsistent with ``count``
            or the encoding is unknown.
    """
    if encoding == DENSE:
        if count != size:
            raise ValueError(f"dense record stores {size} values, header says {count}")
        return None, 0
    if encoding == BITMAP:
        positions, used = decode_bitmap(data, size)
        if positions.size != count:
            raise ValueError(f"bitmap marks {positions.size} nonzeros, header says {count}")
        return positions, used
    if encoding == INDEX:
        return decode_index(data, count, size)
    raise ValueError(f"unknown zero-pattern encoding {encoding!r}; expected one of {ENCODINGS}")


def pattern_nbytes(encoding: str, positions: np.ndarray, size: int) -> int:
    """Exact length of :func:`encode_pattern`'s output, without building it."""
    if encoding == DENSE:
        return 0
    if encoding == BITMAP:
        return (size + 7) // 8
    if encoding == INDEX:
        return int(varint_group_counts(_gaps(positions)).sum())
    raise ValueError(f"unknown zero-pattern encoding {encoding!r}; expected one of {ENCODINGS}")


def choose_encoding(positions: np.ndarray, size: int, values_nbytes: Callable[[int], int]) -> str:
    """The encoding whose pattern plus stored values is smallest.

    Args:
        positions: Increasing flat positions of the nonzero elements.
        size: Number of elements.
        values_nbytes: Bytes taken by that many stored values.

    Returns:
        The smallest encoding; ties go to ``dense``, then ``bitmap``.
    """
    totals = {
        DENSE: values_nbytes(size),
        BITMAP: pattern_nbytes(BITMAP, positions, size) + values_nbytes(positions.size),
        INDEX: pattern_nbytes(INDEX, positions, size) + values_nbytes(positions.size),
    }
    return min(ENCODINGS, key=totals.__getitem__)
