"""The artifact byte format (version 2; version 1 files are still read).

See ``docs/artifact-format.md`` for the full specification. Layout (integers
little-endian)::

    b"FSZ" | version (1 byte) | varint(prefix) | header | body | CRC32 (4 bytes)

``prefix`` is ``header_length << 2 | entropy_coded << 1 | header_deflated``
(version 1: ``header_length << 1 | header_deflated``, never entropy coded).
The header (``_header``) is compact JSON: the model spec, the module
overrides, and one table row per tensor with the length of its record. The body
is the concatenated records, or, when ``entropy_coded``, those records
compressed as one raw LZMA2 stream. The CRC32 covers every byte before it.

A record holds, in order: the scales (float32) and zero points (int32, when
present) of a quantized tensor; the zero pattern (see ``_sparse``); the stored
values. Float values are raw float32, float16 or bfloat16 (the upper 16 bits of
the float32). Quantized codes are stored minus the smallest code their width
allows (``-(2**(bits-1) - 1)`` when symmetric, 0 with a zero point), bit-packed
at ``bits`` bits (see ``_bitpack``).
"""

from __future__ import annotations

import lzma
import struct
import zlib
from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np

from fedsearch._errors import ArtifactError
from fedsearch.artifact._bitpack import pack_uints, packed_nbytes, unpack_uints
from fedsearch.artifact._header import (
    DECODE_ERRORS,
    KIND_ASYMMETRIC,
    KIND_BFLOAT16,
    KIND_FLOAT16,
    KIND_FLOAT32,
    KIND_SYMMETRIC,
    REEXPORT,
    Row,
    encode_header,
    parse_header,
    require,
)
from fedsearch.artifact._sparse import (
    DENSE,
    choose_encoding,
    decode_pattern,
    decode_varints,
    encode_pattern,
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
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_CRC = struct.Struct("<I")
_PREAMBLE_LENGTH = len(MAGIC) + 1
_MIN_LENGTH = _PREAMBLE_LENGTH + 1 + _CRC.size
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 22}]
EntropyMode = Literal["auto", "lzma", "none"]


def _check_preamble(data: bytes) -> int:
    magic = data[: len(MAGIC)]
    if magic != MAGIC[: len(magic)]:
        raise ArtifactError(
            f"not a fedsearch artifact: it starts with {magic!r}, expected {MAGIC!r}; "
            "pass a file written by `fedsearch export`"
        )
    if len(data) < _MIN_LENGTH:
        raise ArtifactError(
            f"artifact is truncated: {len(data)} bytes is below the {_MIN_LENGTH}-byte "
            f"minimum; {REEXPORT}"
        )
    version = data[len(MAGIC)]
    if version not in READABLE_VERSIONS:
        raise ArtifactError(
            f"artifact format version {version} is not supported: this build of fedsearch "
            f"reads version {' and '.join(map(str, READABLE_VERSIONS))}; upgrade fedsearch, "
            f"or {REEXPORT}"
        )
    return version


def _read_prefix(data: bytes, version: int) -> tuple[bytes, bool, bool, int]:
    try:
        (value,), used = decode_varints(data[_PREAMBLE_LENGTH : _PREAMBLE_LENGTH + 10], 1)
    except ValueError as exc:
        raise ArtifactError(f"artifact header length is unreadable ({exc}); {REEXPORT}") from exc
    value = int(value)
    entropy = version >= 2 and bool(value & 2)
    start = _PREAMBLE_LENGTH + used
    end = start + (value >> (1 if version == 1 else 2))
    if end + _CRC.size > len(data):
        raise ArtifactError(
            f"artifact is truncated: its header alone needs {end + _CRC.size} bytes, "
            f"got {len(data)}; {REEXPORT}"
        )
    return data[start:end], bool(value & 1), entropy, end


def _split_artifact(data: bytes) -> tuple[ModelSpec, list[Row], bytes]:
    version = _check_preamble(data)
    corrupt = ArtifactError(
        f"artifact is corrupt or truncated: CRC32 checksum mismatch; {REEXPORT}"
    )
    content_end = len(data) - _CRC.size
    crc_ok = _CRC.unpack_from(data, content_end)[0] == zlib.crc32(memoryview(data)[:content_end])
    payload, deflated, entropy, body_start = _read_prefix(data, version)
    try:
        spec, rows = parse_header(payload, deflated, version)
    except ArtifactError as exc:
        if not crc_ok:
            raise corrupt from exc
        raise
    body_length = sum(row.num_bytes for row in rows)
    if entropy:
        if not crc_ok:
            raise corrupt
        return spec, rows, _inflate_body(data[body_start:content_end], body_length)
    expected = body_start + body_length + _CRC.size
    if len(data) < expected:
        raise ArtifactError(
            f"artifact is truncated: expected {expected} bytes, got {len(data)}; {REEXPORT}"
        )
    if len(data) > expected:
        raise ArtifactError(
            f"artifact is corrupt: its header accounts for {expected} bytes but it has "
            f"{len(data)} (data appended?); {REEXPORT}"
        )
    if not crc_ok:
        raise corrupt
    return spec, rows, data[body_start : body_start + body_length]


def _inflate_body(compressed: bytes, length: int) -> bytes:
    decompressor = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    try:
        body = decompressor.decompress(compressed, max_length=length + 1)
    except lzma.LZMAError as exc:
        raise ArtifactError(f"artifact body does not decompress ({exc}); {REEXPORT}") from exc
    if len(body) != length:
        raise ArtifactError(
            f"artifact is corrupt: its body decompresses to {len(body)} bytes, the header "
            f"accounts for {length}; {REEXPORT}"
        )
    return body


def _tensor_prefix(tensor: StoredTensor) -> bytes:
    if isinstance(tensor, FloatTensor):
        return b""
    scales = tensor.scale.astype("<f4").tobytes()
    if tensor.zero_point is None:
        return scales
    return scales + tensor.zero_point.astype("<i4").tobytes()


def _pack_values(tensor: StoredTensor, values: np.ndarray) -> bytes:
    if isinstance(tensor, FloatTensor):
        if tensor.bfloat16:
            return (values.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
        return values.astype(values.dtype.newbyteorder("<")).tobytes()
    lowest = code_range(tensor.bits, tensor.is_symmetric)[0]
    return pack_uints(values.astype(np.int64) - lowest, tensor.bits)


def _kind(tensor: StoredTensor) -> int:
    if isinstance(tensor, QuantizedTensor):
        return KIND_SYMMETRIC if tensor.zero_point is None else KIND_ASYMMETRIC
    if tensor.bfloat16:
        return KIND_BFLOAT16
    return KIND_FLOAT32 if tensor.values.dtype == np.float32 else KIND_FLOAT16


def _encode_record(name: str, tensor: StoredTensor) -> tuple[Row, bytes]:
    quantized = isinstance(tensor, QuantizedTensor)
    array, axis = (tensor.codes, tensor.axis) if quantized else (tensor.values, None)
    flat = array.reshape(-1)
    bits = stored_bits(tensor)
    positions = nonzero_positions(tensor)
    encoding = choose_encoding(positions, flat.size, lambda count: packed_nbytes(count, bits))
    stored = flat if encoding == DENSE else flat[positions]
    pattern = encode_pattern(encoding, positions, flat.size)
    record = _tensor_prefix(tensor) + pattern + _pack_values(tensor, stored)
    row = Row(name, array.shape, _kind(tensor), bits, axis, encoding, len(record), stored.size)
    return row, record


def _read_scales(row: Row, record: memoryview) -> tuple[np.ndarray, np.ndarray | None, int]:
    count = row.num_scales
    scale = np.frombuffer(record, dtype="<f4", count=count).astype(np.float32)
    if not row.has_zero_point:
        return scale, None, 4 * count
    zero_point = np.frombuffer(record, dtype="<i4", count=count, offset=4 * count)
    return scale, zero_point.astype(np.int32), 8 * count


def _zero_codes(row: Row, zero_point: np.ndarray | None) -> np.ndarray:
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


def _decode_floats(row: Row, raw: memoryview, positions: np.ndarray | None) -> FloatTensor:
    if row.kind == KIND_BFLOAT16:
        upper = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        values = _expand(upper.view(np.float32), positions, lambda: np.zeros(row.size, np.float32))
        return FloatTensor(values.reshape(row.shape), bfloat16=True)
    dtype = np.dtype(np.float32 if row.bits == 32 else np.float16)
    values = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
    values = _expand(values, positions, lambda: np.zeros(row.size, dtype=dtype))
    return FloatTensor(values.reshape(row.shape))


def _decode_record(row: Row, record: memoryview) -> StoredTensor:
    scale, zero_point, offset = _read_scales(row, record) if row.quantized else (None, None, 0)
    positions, used = decode_pattern(row.encoding, record[offset:], row.stored_values, row.size)
    offset += used
    needed = offset + packed_nbytes(row.stored_values, row.bits)
    require(needed == len(record), f"record has {len(record)} bytes, its contents {needed}")
    if not row.quantized:
        return _decode_floats(row, record[offset:], positions)
    lowest = code_range(row.bits, zero_point is None)[0]
    codes = unpack_uints(record[offset:], row.stored_values, row.bits).astype(np.int32) + lowest
    codes = _expand(codes, positions, lambda: _zero_codes(row, zero_point)).reshape(row.shape)
    return QuantizedTensor(codes, scale, row.bits, row.axis, zero_point)


def _decode_records(rows: list[Row], body: bytes) -> list[StoredTensor]:
    tensors: list[StoredTensor] = []
    offset = 0
    view = memoryview(body)
    for row in rows:
        record = view[offset : offset + row.num_bytes]
        try:
            tensors.append(_decode_record(row, record))
        except DECODE_ERRORS as exc:
            raise ArtifactError(
                f"artifact record of tensor {row.name!r} is invalid ({exc}); {REEXPORT}"
            ) from exc
        offset += row.num_bytes
    return tensors


def _as_bytes(data: bytes) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"artifact data must be bytes, got {type(data).__name__}")
    return bytes(data)


def encode_artifact(
    spec: ModelSpec, tensors: Mapping[str, StoredTensor], *, entropy: EntropyMode = "auto"
) -> bytes:
    """Serialise a model spec and its tensors.

    Args:
        spec: How to rebuild the module.
        tensors: Stored tensors by name; their order is kept.
        entropy: ``"lzma"`` entropy-codes the body (raw LZMA2), ``"none"``
            stores it plain, ``"auto"`` picks whichever is smaller.

    Returns:
        The artifact; its length is the model's reported size.

    Raises:
        TypeError: If ``spec`` is not a ModelSpec, a name is not a string or a
            tensor is neither a QuantizedTensor nor a FloatTensor.
        ValueError: If the spec is not JSON-serialisable or ``entropy`` unknown.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    if entropy not in ("auto", "lzma", "none"):
        raise ValueError(f"entropy must be 'auto', 'lzma' or 'none', got {entropy!r}")
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
    body = b"".join(records)
    candidates = []
    if entropy != "lzma":
        candidates.append((False, body))
    if entropy != "none":
        candidates.append((True, lzma.compress(body, lzma.FORMAT_RAW, filters=_LZMA_FILTERS)))
    coded, stored_body = min(candidates, key=lambda item: len(item[1]))
    header = encode_header(spec, rows, coded)
    content = b"".join([MAGIC, bytes([FORMAT_VERSION]), header, stored_body])
    return content + _CRC.pack(zlib.crc32(content))


def decode_artifact(data: bytes) -> Artifact:
    """Read an artifact written by :func:`encode_artifact` (format 1 or 2).

    Raises:
        ArtifactError: If ``data`` is not an artifact, is truncated, corrupt,
            of an unsupported version or internally inconsistent.
    """
    spec, rows, body = _split_artifact(_as_bytes(data))
    tensors = _decode_records(rows, body)
    return Artifact(spec, {row.name: tensor for row, tensor in zip(rows, tensors, strict=True)})


def describe_artifact(data: bytes) -> list[TensorReport]:
    """One report per tensor of an artifact, in stored order.

    ``num_bytes`` is the length of the tensor's record before entropy coding.

    Raises:
        ArtifactError: As :func:`decode_artifact`.
    """
    _, rows, body = _split_artifact(_as_bytes(data))
    kinds = {KIND_FLOAT32: "float32", KIND_FLOAT16: "float16", KIND_BFLOAT16: "bfloat16"}
    return [
        TensorReport(
            name=row.name,
            shape=row.shape,
            kind=kinds.get(row.kind, "quantized"),
            bits=row.bits,
            sparsity=1.0 - nonzero_positions(tensor).size / row.size if row.size else 0.0,
            encoding=row.encoding,
            num_bytes=row.num_bytes,
        )
        for row, tensor in zip(rows, _decode_records(rows, body), strict=True)
    ]
