"""Zero-pattern encodings and the choice between them."""

from __future__ import annotations

import numpy as np
import pytest

from fedsearch.artifact._sparse import (
    BITMAP,
    DENSE,
    ENCODINGS,
    INDEX,
    choose_encoding,
    decode_bitmap,
    decode_index,
    decode_pattern,
    decode_varints,
    encode_bitmap,
    encode_index,
    encode_pattern,
    encode_varints,
    pattern_nbytes,
    varint_group_counts,
)


def float32_bytes(count: int) -> int:
    return 4 * count


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")],
)
def test_varints_match_leb128(value: int, encoded: bytes) -> None:
    assert encode_varints(np.array([value])) == encoded
    values, used = decode_varints(encoded + b"\x05", 1)
    assert values.tolist() == [value]
    assert used == len(encoded)


def test_varints_round_trip_and_counts_match() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [rng.integers(0, 200, 500), rng.integers(0, 2**40, 500), [2**63 - 1, 0, 2**35]]
    ).astype(np.uint64)
    encoded = encode_varints(values)
    assert len(encoded) == int(varint_group_counts(values).sum())
    decoded, used = decode_varints(encoded, values.size)
    assert used == len(encoded)
    np.testing.assert_array_equal(decoded, values)
    assert varint_group_counts(np.array([2**63 - 1]))[0] == 9


def test_varints_empty() -> None:
    assert encode_varints(np.array([], dtype=np.int64)) == b""
    values, used = decode_varints(b"", 0)
    assert values.size == 0 and used == 0


def test_truncated_varints_are_rejected() -> None:
    with pytest.raises(ValueError, match="truncated"):
        decode_varints(b"\x01\x80", 2)
    with pytest.raises(ValueError, match="longer"):
        decode_varints(b"\x80" * 11 + b"\x00", 1)


def test_bitmap_round_trip() -> None:
    positions = np.array([0, 3, 8, 9, 12])
    encoded = encode_bitmap(positions, 13)
    assert encoded == bytes([0b00001001, 0b00010011])
    decoded, used = decode_bitmap(encoded + b"\xff", 13)
    assert used == 2
    np.testing.assert_array_equal(decoded, positions)


def test_index_round_trip_uses_gaps_minus_one() -> None:
    positions = np.array([0, 1, 2, 200, 100_000])
    encoded = encode_index(positions)
    assert encoded[:4] == b"\x00\x00\x00\xc5"  # gaps 0, 0, 0, 197
    decoded, used = decode_index(encoded + b"\x07", positions.size, 100_001)
    assert used == len(encoded)
    np.testing.assert_array_equal(decoded, positions)


def test_index_past_the_end_is_rejected() -> None:
    with pytest.raises(ValueError, match="past"):
        decode_index(encode_index(np.array([3, 10])), 2, 10)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("density", [0.0, 0.01, 0.5, 1.0])
def test_patterns_round_trip(encoding: str, density: float) -> None:
    size = 777
    positions = np.flatnonzero(np.random.default_rng(2).random(size) < density)
    if encoding == DENSE:
        positions = np.arange(size)
    encoded = encode_pattern(encoding, positions, size)
    assert len(encoded) == pattern_nbytes(encoding, positions, size)
    decoded, used = decode_pattern(encoding, encoded, positions.size, size)
    assert used == len(encoded)
    expected = None if encoding == DENSE else positions
    if expected is None:
        assert decoded is None
    else:
        np.testing.assert_array_equal(decoded, expected)


def test_bitmap_count_must_match_header() -> None:
    with pytest.raises(ValueError, match="marks 2 nonzeros"):
        decode_pattern(BITMAP, encode_bitmap(np.array([1, 2]), 8), 3, 8)


def test_unknown_encoding_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        encode_pattern("rle", np.array([0]), 1)


def test_few_nonzeros_pick_index() -> None:
    positions = np.array([10, 500, 999])
    assert pattern_nbytes(INDEX, positions, 1000) == 1 + 2 + 2
    # dense 4000 bytes, bitmap 125 + 12, index 5 + 12
    assert choose_encoding(positions, 1000, float32_bytes) == INDEX


def test_half_sparse_picks_bitmap() -> None:
    positions = np.flatnonzero(np.random.default_rng(3).random(1000) < 0.5)
    index_total = pattern_nbytes(INDEX, positions, 1000) + float32_bytes(positions.size)
    bitmap_total = 125 + float32_bytes(positions.size)
    assert bitmap_total < index_total < 4000
    assert choose_encoding(positions, 1000, float32_bytes) == BITMAP


def test_no_zeros_picks_dense() -> None:
    assert choose_encoding(np.arange(1000), 1000, float32_bytes) == DENSE


def test_ties_prefer_dense_then_bitmap() -> None:
    assert choose_encoding(np.array([], dtype=np.int64), 0, float32_bytes) == DENSE
    # bitmap: 1 + 4, index: 1 + 4, dense: 32
    assert choose_encoding(np.array([0]), 8, float32_bytes) == BITMAP
