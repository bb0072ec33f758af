"""The artifact byte format: a model spec plus its stored tensors.

Layout (integers little-endian)::

    b"FSZ" | version (1 byte) | varint(header_length << 1 | deflated) | header
           | record of tensor 0 | record of tensor 1 | ... | CRC32 (4 bytes)

The header is compact UTF-8 JSON, raw-deflated when that is smaller (flagged by
the low bit of the LEB128 length varint): ``[architecture, params, input_shape,
num_classes, metadata, table]``. Each table row is ``[name, shape, kind,
encoding, record_length, stored_values]`` followed, for quantized tensors, by
``bits`` and then ``axis`` when per channel. ``kind`` is 0 float32, 1 float16,
2 symmetric quantized, 3 quantized with zero points; ``encoding`` indexes
``("dense", "bitmap", "index")``; the number of scales follows from ``axis``
and ``shape``. The CRC32 covers every byte before it.

A record holds, in order: the scales (float32) and zero points (int32, when
present) of a quantized tensor; the zero pattern (see ``_sparse``); the stored
values. Float values are raw float32/float16. Quantized codes are stored minus
the smallest code their width allows (``-(2**(bits-1) - 1)`` when symmetric,
0 with a zero point), bit-packed at ``bits`` bits (see ``_bitpack``).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedsearch._errors import ArtifactError
from fedsearch.artifact._bitpack import pack_uints, packed_nbytes, unpack_uints
from fedsearch.artifact._sparse import (
    DENSE,
    ENCODINGS,
    choose_encoding,
    decode_pattern,
    decode_varints,
    encode_pattern,
    encode_varints,
)
from fedsearch.artifact._tensors import (
    Artifact,
    FloatTensor,
    ModelSpec,
    QuantizedTensor,
    StoredTensor,
    TensorReport,
    channel_shape,
    code_range,
    nonzero_positions,
    stored_bits,
)

MAGIC = b"FSZ"
FORMAT_VERSION = 1
_CRC = struct.Struct("<I")
_PREAMBLE_LENGTH = len(MAGIC) + 1
_MIN_LENGTH = _PREAMBLE_LENGTH + 1 + _CRC.size
_MAX_HEADER_BYTES = 1 << 26
_REEXPORT = "re-export it with `fedsearch export`"
_FLOAT_BITS = (32, 16)  # table kinds 0 and 1
_KIND_SYMMETRIC = 2
_KIND_ASYMMETRIC = 3
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, MemoryError)


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise ValueError(problem)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class _Row:
    """One row of the header's tensor table."""

    name: str
    shape: tuple[int, ...]
    quantized: bool
    bits: int
    axis: int | None
    has_zero_point: bool
    encoding: str
    num_bytes: int
    stored_values: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def num_scales(self) -> int:
        return 1 if self.axis is None else self.shape[self.axis]

    @property
    def kind_code(self) -> int:
        if self.quantized:
            return _KIND_ASYMMETRIC if self.has_zero_point else _KIND_SYMMETRIC
        return _FLOAT_BITS.index(self.bits)

    def to_json(self) -> list[Any]:
        encoding = ENCODINGS.index(self.encoding)
        row = [self.name, list(self.shape), self.kind_code, encoding, self.num_bytes]
        row.append(self.stored_values)
        if self.quantized:
            row.append(self.bits)
            if self.axis is not None:
                row.append(self.axis)
        return row

    @classmethod
    def from_json(cls, item: Any) -> _Row:
        _require(isinstance(item, list) and 6 <= len(item) <= 8, f"bad table row {item!r}")
        name, shape, kind, encoding, num_bytes, stored, *extra = item
        _require(isinstance(name, str), f"tensor name {name!r} is not a string")
        _require(isinstance(shape, list) and all(map(_is_count, shape)), f"bad shape {shape!r}")
        _require(_is_count(kind) and kind <= _KIND_ASYMMETRIC, f"bad kind for {name!r}")
        _require(_is_count(encoding) and encoding < len(ENCODINGS), f"bad encoding for {name!r}")
        _require(_is_count(num_bytes) and _is_count(stored), f"bad lengths for {name!r}")
        quantized = kind >= _KIND_SYMMETRIC
        _require(bool(extra) == quantized, f"bits present/missing for {name!r}")
        bits = extra[0] if quantized else _FLOAT_BITS[kind]
        axis = extra[1] if len(extra) == 2 else None
        _require((_is_count(bits) and 1 <= bits <= 16) or not quantized, f"bad bits for {name!r}")
        _require(axis is None or (_is_count(axis) and axis < len(shape)), f"bad axis for {name!r}")
        has_zp = kind == _KIND_ASYMMETRIC
        row = cls(name, tuple(shape), quantized, bits, axis, has_zp, ENCODINGS[encoding],
                  num_bytes, stored)  # fmt: skip
        _require(stored <= row.size, f"{name!r} stores more values than it has elements")
        return row


def _encode_header(spec: ModelSpec, rows: list[_Row]) -> bytes:
    spec_part = [spec.architecture, spec.params, list(spec.input_shape), spec.num_classes]
    document = [*spec_part, spec.metadata, [row.to_json() for row in rows]]
    try:
        plain = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model spec or tensor names are not JSON-serialisable: {exc}") from exc
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(plain) + compressor.flush()
    payload, flag = (deflated, 1) if len(deflated) < len(plain) else (plain, 0)
    return encode_varints(np.array([len(payload) << 1 | flag])) + payload


def _parse_header(payload: bytes, deflated: bool) -> tuple[ModelSpec, list[_Row]]:
    try:
        if deflated:
            decompressor = zlib.decompressobj(-15)
            payload = decompressor.decompress(payload, _MAX_HEADER_BYTES)
            _require(decompressor.eof, "compressed header is incomplete or too large")
        architecture, params, input_shape, num_classes, metadata, table = json.loads(payload)
        _require(isinstance(architecture, str), "architecture is not a string")
        _require(isinstance(params, dict) and isinstance(metadata, dict), "bad params/metadata")
        _require(isinstance(input_shape, list) and all(map(_is_count, input_shape)), "bad shape")
        _require(_is_count(num_classes) and isinstance(table, list), "bad num_classes/table")
        spec = ModelSpec(architecture, params, tuple(input_shape), num_classes, metadata)
        rows = [_Row.from_json(item) for item in table]
        _require(len({row.name for row in rows}) == len(rows), "duplicate tensor names")
    except (zlib.error, *_DECODE_ERRORS) as exc:
        raise ArtifactError(f"artifact header is invalid ({exc}); {_REEXPORT}") from exc
    return spec, rows


def _check_preamble(data: bytes) -> None:
    magic = data[: len(MAGIC)]
    if magic != MAGIC[: len(magic)]:
        raise ArtifactError(
            f"not a fedsearch artifact: it starts with {magic!r}, expected {MAGIC!r}; "
            "pass a file written by `fedsearch export`"
        )
    if len(data) < _MIN_LENGTH:
        raise ArtifactError(
            f"artifact is truncated: {len(data)} bytes is below the {_MIN_LENGTH}-byte "
            f"minimum; {_REEXPORT}"
        )
    version = data[len(MAGIC)]
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"artifact format version {version} is not supported: this build of fedsearch "
            f"reads version {FORMAT_VERSION} only; upgrade fedsearch, or {_REEXPORT}"
        )


def _read_header_payload(data: bytes) -> tuple[bytes, bool, int]:
    try:
        (value,), used = decode_varints(data[_PREAMBLE_LENGTH : _PREAMBLE_LENGTH + 10], 1)
    except ValueError as exc:
        raise ArtifactError(f"artifact header length is unreadable ({exc}); {_REEXPORT}") from exc
    start = _PREAMBLE_LENGTH + used
    end = start + (int(value) >> 1)
    if end + _CRC.size > len(data):
        raise ArtifactError(
            f"artifact is truncated: its header alone needs {end + _CRC.size} bytes, "
            f"got {len(data)}; {_REEXPORT}"
        )
    return data[start:end], bool(value & 1), end


def _split_artifact(data: bytes) -> tuple[ModelSpec, list[_Row], memoryview]:
    _check_preamble(data)
    corrupt = ArtifactError(f"artifact is corrupt: CRC32 checksum mismatch; {_REEXPORT}")
    content_end = len(data) - _CRC.size
    crc_ok = _CRC.unpack_from(data, content_end)[0] == zlib.crc32(memoryview(data)[:content_end])
    payload, deflated, body_start = _read_header_payload(data)
    try:
        spec, rows = _parse_header(payload, deflated)
    except ArtifactError as exc:
        if not crc_ok:
            raise corrupt from exc
        raise
    body_end = body_start + sum(row.num_bytes for row in rows)
    expected = body_end + _CRC.size
    if len(data) < expected:
        raise ArtifactError(
            f"artifact is truncated: expected {expected} bytes, got {len(data)}; {_REEXPORT}"
        )
    if len(data) > expected:
        raise ArtifactError(
            f"artifact is corrupt: its header accounts for {expected} bytes but it has "
            f"{len(data)} (data appended?); {_REEXPORT}"
        )
    if not crc_ok:
        raise corrupt
    return spec, rows, memoryview(data)[body_start:body_end]


def _tensor_prefix(tensor: StoredTensor) -> bytes:
    if isinstance(tensor, FloatTensor):
        return b""
    scales = tensor.scale.astype("<f4").tobytes()
    if tensor.zero_point is None:
        return scales
    return scales + tensor.zero_point.astype("<i4").tobytes()


def _pack_values(tensor: StoredTensor, values: np.ndarray) -> bytes:
    if isinstance(tensor, FloatTensor):
        return values.astype(values.dtype.newbyteorder("<")).tobytes()
    lowest = code_range(tensor.bits, tensor.is_symmetric)[0]
    return pack_uints(values.astype(np.int64) - lowest, tensor.bits)


def _encode_record(name: str, tensor: StoredTensor) -> tuple[_Row, bytes]:
    quantized = isinstance(tensor, QuantizedTensor)
    if quantized:
        array, axis, has_zp = tensor.codes, tensor.axis, tensor.zero_point is not None
    else:
        array, axis, has_zp = tensor.values, None, False
    flat = array.reshape(-1)
    bits = stored_bits(tensor)
    positions = nonzero_positions(tensor)
    encoding = choose_encoding(positions, flat.size, lambda count: packed_nbytes(count, bits))
    stored = flat if encoding == DENSE else flat[positions]
    pattern = encode_pattern(encoding, positions, flat.size)
    record = _tensor_prefix(tensor) + pattern + _pack_values(tensor, stored)
    row = _Row(name, array.shape, quantized, bits, axis, has_zp, encoding, len(record), stored.size)
    return row, record


def _read_scales(row: _Row, record: memoryview) -> tuple[np.ndarray, np.ndarray | None, int]:
    count = row.num_scales
    scale = np.frombuffer(record, dtype="<f4", count=count).astype(np.float32)
    if not row.has_zero_point:
        return scale, None, 4 * count
    zero_point = np.frombuffer(record, dtype="<i4", count=count, offset=4 * count)
    return scale, zero_point.astype(np.int32), 8 * count


def _zero_codes(row: _Row, zero_point: np.ndarray | None) -> np.ndarray:
    if zero_point is None:
        return np.zeros(row.size, dtype=np.int32)
    per_channel = zero_point.reshape(channel_shape(len(row.shape), row.axis))
    return np.array(np.broadcast_to(per_channel, row.shape), dtype=np.int32).ravel()


def _expand(
    stored: np.ndarray, positions: np.ndarray | None, zeros: Callable[[], np.ndarray]
) -> np.ndarray:
    """All values of a record: ``stored`` placed at ``positions`` of ``zeros()``."""
    if positions is None:
        return stored
    values = zeros()
    values[positions] = stored
    return values


def _decode_record(row: _Row, record: memoryview) -> StoredTensor:
    scale, zero_point, offset = _read_scales(row, record) if row.quantized else (None, None, 0)
    positions, used = decode_pattern(row.encoding, record[offset:], row.stored_values, row.size)
    offset += used
    needed = offset + packed_nbytes(row.stored_values, row.bits)
    _require(needed == len(record), f"record has {len(record)} bytes, its contents {needed}")
    if not row.quantized:
        dtype = np.dtype(np.float32 if row.bits == 32 else np.float16)
        values = np.frombuffer(record[offset:], dtype=dtype.newbyteorder("<")).astype(dtype)
        values = _expand(values, positions, lambda: np.zeros(row.size, dtype=dtype))
        return FloatTensor(values.reshape(row.shape))
    lowest = code_range(row.bits, zero_point is None)[0]
    codes = unpack_uints(record[offset:], row.stored_values, row.bits).astype(np.int32) + lowest
    codes = _expand(codes, positions, lambda: _zero_codes(row, zero_point)).reshape(row.shape)
    return QuantizedTensor(codes, scale, row.bits, row.axis, zero_point)


def _decode_records(rows: list[_Row], body: memoryview) -> list[StoredTensor]:
    tensors: list[StoredTensor] = []
    offset = 0
    for row in rows:
        record = body[offset : offset + row.num_bytes]
        try:
            tensors.append(_decode_record(row, record))
        except _DECODE_ERRORS as exc:
            raise ArtifactError(
                f"artifact record of tensor {row.name!r} is invalid ({exc}); {_REEXPORT}"
            ) from exc
        offset += row.num_bytes
    return tensors


def _as_bytes(data: bytes) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"artifact data must be bytes, got {type(data).__name__}")
    return bytes(data)


def encode_artifact(spec: ModelSpec, tensors: Mapping[str, StoredTensor]) -> bytes:
    """Serialise a model spec and its tensors.

    Args:
        spec: How to rebuild the module.
        tensors: Stored tensors by name; their order is kept.

    Returns:
        The artifact; its length is the model's reported size.

    Raises:
        TypeError: If ``spec`` is not a ModelSpec, a name is not a string or a
            tensor is neither a QuantizedTensor nor a FloatTensor.
        ValueError: If the spec is not JSON-serialisable.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    rows, records = [], []
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, QuantizedTensor | FloatTensor):
            raise TypeError(
                f"tensors must map str to QuantizedTensor or FloatTensor, got {name!r}: "
                f"{type(tensor).__name__}"
            )
        row, record = _encode_record(name, tensor)
        rows.append(row)
        records.append(record)
    content = b"".join([MAGIC, bytes([FORMAT_VERSION]), _encode_header(spec, rows), *records])
    return content + _CRC.pack(zlib.crc32(content))


def decode_artifact(data: bytes) -> Artifact:
    """Read an artifact written by :func:`encode_artifact`.

    Raises:
        ArtifactError: If ``data`` is not an artifact, is truncated, corrupt,
            of an unsupported version or internally inconsistent.
    """
    spec, rows, body = _split_artifact(_as_bytes(data))
    tensors = _decode_records(rows, body)
    return Artifact(spec, {row.name: tensor for row, tensor in zip(rows, tensors, strict=True)})


def describe_artifact(data: bytes) -> list[TensorReport]:
    """One report per tensor of an artifact, in stored order.

    Raises:
        ArtifactError: As :func:`decode_artifact`.
    """
    _, rows, body = _split_artifact(_as_bytes(data))
    return [
        TensorReport(
            name=row.name,
            shape=row.shape,
            kind=f"float{row.bits}" if not row.quantized else "quantized",
            bits=row.bits,
            sparsity=1.0 - nonzero_positions(tensor).size / row.size if row.size else 0.0,
            encoding=row.encoding,
            num_bytes=row.num_bytes,
        )
        for row, tensor in zip(rows, _decode_records(rows, body), strict=True)
    ]
