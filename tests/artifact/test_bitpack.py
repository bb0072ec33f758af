"""Bit packing of unsigned integers of 1..16 bits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsearch.artifact._bitpack import pack_uints, packed_nbytes, unpack_uints

LENGTHS = [0, 1, 7, 8, 9, 15, 1000, 1003]


@pytest.mark.parametrize("bits", range(1, 17))
@pytest.mark.parametrize("length", LENGTHS)
def test_round_trip_every_width(bits: int, length: int) -> None:
    rng = np.random.default_rng(bits * 1000 + length)
    values = rng.integers(0, 1 << bits, size=length)
    if length:
        values[0] = (1 << bits) - 1  # the largest value must survive
    packed = pack_uints(values, bits)
    assert len(packed) == math.ceil(length * bits / 8) == packed_nbytes(length, bits)
    unpacked = unpack_uints(packed, length, bits)
    assert unpacked.dtype == np.uint16
    assert unpacked.shape == (length,)
    np.testing.assert_array_equal(unpacked, values)


def test_layout_is_least_significant_bit_first() -> None:
    assert pack_uints(np.array([1, 2]), 4) == b"\x21"
    assert pack_uints(np.array([1, 0, 0, 0, 0, 0, 0, 0, 1]), 1) == b"\x01\x01"
    assert pack_uints(np.array([5]), 3) == b"\x05"
    assert pack_uints(np.array([0x1FF]), 9) == b"\xff\x01"
    assert pack_uints(np.array([0x1234]), 16) == b"\x34\x12"


def test_accepts_any_integer_dtype_and_shape() -> None:
    values = np.arange(12, dtype=np.int8).reshape(3, 4)
    packed = pack_uints(values, 4)
    np.testing.assert_array_equal(unpack_uints(packed, 12, 4), values.ravel())


def test_unpack_ignores_bytes_after_the_values() -> None:
    packed = pack_uints(np.array([3, 1, 2]), 2) + b"\xff\xff"
    np.testing.assert_array_equal(unpack_uints(packed, 3, 2), [3, 1, 2])


@pytest.mark.parametrize("bits", [0, 17, -1, True, 2.0])
def test_rejects_unsupported_widths(bits: object) -> None:
    with pytest.raises(ValueError, match="bits"):
        pack_uints(np.array([0]), bits)  # type: ignore[arg-type]


@pytest.mark.parametrize("values", [np.array([4]), np.array([-1]), np.array([0.5])])
def test_rejects_values_that_do_not_fit(values: np.ndarray) -> None:
    with pytest.raises(ValueError):
        pack_uints(values, 2)


def test_unpack_rejects_short_data() -> None:
    with pytest.raises(ValueError, match="need 2 bytes"):
        unpack_uints(b"\x00", 3, 5)


def test_a_few_million_values_pack_quickly() -> None:
    values = np.random.default_rng(0).integers(0, 1 << 5, size=3_000_000)
    np.testing.assert_array_equal(unpack_uints(pack_uints(values, 5), values.size, 5), values)
