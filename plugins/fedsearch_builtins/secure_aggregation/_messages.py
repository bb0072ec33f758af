"""Byte encodings of the SecAgg+ protocol messages (every one crosses the channel).

Every message starts with a one-byte tag naming its stage; integers are
little-endian; client ids are 32-bit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from fedsearch import FedsearchError

SETUP, KEYS, NEIGHBOUR_KEYS, SHARES, FORWARDED, MASKED, UNMASK_REQUEST, UNMASK = range(1, 9)
SELF_MASK, PAIR_KEY = 0, 1
"""What an unmasking share rebuilds: a survivor's self-mask seed, a dropout's mask key."""


class MessageError(FedsearchError):
    """A protocol message is malformed (wrong tag, truncated)."""


def tagged(tag: int, body: bytes) -> bytes:
    """``body`` after its one-byte ``tag``."""
    return bytes([tag]) + body


def body_of(message: bytes, tag: int) -> bytes:
    """``message`` without its tag, which must be ``tag``."""
    if not message or message[0] != tag:
        raise MessageError(f"expected a message tagged {tag}, got {message[:1]!r}")
    return message[1:]


def pack_ids(ids: Sequence[int]) -> bytes:
    """A count, then the ids."""
    return struct.pack(f"<I{len(ids)}I", len(ids), *ids)


def unpack_ids(body: bytes, offset: int = 0) -> tuple[list[int], int]:
    """Ids packed by ``pack_ids`` at ``offset``, and the offset after them."""
    (count,) = struct.unpack_from("<I", body, offset)
    ids = list(struct.unpack_from(f"<{count}I", body, offset + 4))
    return ids, offset + 4 + 4 * count


def pack_records(records: Iterable[tuple[int, bytes]], size: int) -> bytes:
    """A count, then ``(id, fixed-size bytes)`` records."""
    items = list(records)
    for _, data in items:
        if len(data) != size:
            raise MessageError(f"record of {len(data)} bytes, expected {size}")
    return struct.pack("<I", len(items)) + b"".join(
        struct.pack("<I", owner) + data for owner, data in items
    )


def unpack_records(body: bytes, size: int) -> list[tuple[int, bytes]]:
    """The records of ``pack_records``."""
    (count,) = struct.unpack_from("<I", body, 0)
    if len(body) != 4 + count * (4 + size):
        raise MessageError(f"{len(body)} bytes cannot hold {count} records of {size} bytes")
    out = []
    for index in range(count):
        start = 4 + index * (4 + size)
        (owner,) = struct.unpack_from("<I", body, start)
        out.append((owner, body[start + 4 : start + 4 + size]))
    return out
