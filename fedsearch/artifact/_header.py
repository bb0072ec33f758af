"""The artifact header: the model spec and the table describing every tensor record."""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedsearch._errors import ArtifactError
from fedsearch.artifact._sparse import ENCODINGS, encode_varints
from fedsearch.artifact._tensors import ModelSpec

REEXPORT = "re-export it with `fedsearch export`"
DECODE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    MemoryError,
    RecursionError,
)
_MAX_HEADER_BYTES = 1 << 26
MAX_ELEMENTS = 1 << 25
"""Most elements an artifact's tensors may hold together (33.5M; 128 MiB as float32)."""
MAX_TENSOR_DIMS = 8
MAX_CLASSES = 1 << 20
MAX_INPUT_DIMS = 4
MAX_INPUT_ELEMENTS = 1 << 24
KIND_FLOAT32, KIND_FLOAT16, KIND_SYMMETRIC, KIND_ASYMMETRIC, KIND_BFLOAT16 = range(5)
_FLOAT_KIND_BITS = {KIND_FLOAT32: 32, KIND_FLOAT16: 16, KIND_BFLOAT16: 16}


def require(condition: bool, problem: str) -> None:
    """Raise ``ValueError(problem)`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(problem)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class Row:
    """One row of the header's tensor table."""

    name: str
    shape: tuple[int, ...]
    kind: int
    bits: int
    axis: int | None
    encoding: str
    num_bytes: int
    stored_values: int

    @property
    def quantized(self) -> bool:
        """Integer codes with scales (kinds 2 and 3)."""
        return self.kind in (KIND_SYMMETRIC, KIND_ASYMMETRIC)

    @property
    def has_zero_point(self) -> bool:
        """Asymmetric quantization: the record holds zero points."""
        return self.kind == KIND_ASYMMETRIC

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def num_scales(self) -> int:
        """Scales (and zero points) the record holds."""
        return 1 if self.axis is None else self.shape[self.axis]

    def to_json(self) -> list[Any]:
        """The compact JSON row."""
        encoding = ENCODINGS.index(self.encoding)
        row = [self.name, list(self.shape), self.kind, encoding, self.num_bytes, self.stored_values]
        if self.quantized:
            row.append(self.bits)
            if self.axis is not None:
                row.append(self.axis)
        return row

    @classmethod
    def from_json(cls, item: Any, max_kind: int) -> Row:
        """Parse and check one JSON row (``ValueError`` when it is malformed)."""
        require(isinstance(item, list) and 6 <= len(item) <= 8, f"bad table row {item!r}")
        name, shape, kind, encoding, num_bytes, stored, *extra = item
        require(isinstance(name, str), f"tensor name {name!r} is not a string")
        require(isinstance(shape, list) and all(map(_is_count, shape)), f"bad shape {shape!r}")
        require(_is_count(kind) and kind <= max_kind, f"bad kind for {name!r}")
        require(_is_count(encoding) and encoding < len(ENCODINGS), f"bad encoding for {name!r}")
        require(_is_count(num_bytes) and _is_count(stored), f"bad lengths for {name!r}")
        quantized = kind in (KIND_SYMMETRIC, KIND_ASYMMETRIC)
        require(bool(extra) == quantized, f"bits present/missing for {name!r}")
        bits = extra[0] if quantized else _FLOAT_KIND_BITS[kind]
        axis = extra[1] if len(extra) == 2 else None
        require((_is_count(bits) and 1 <= bits <= 16) or not quantized, f"bad bits for {name!r}")
        require(axis is None or (_is_count(axis) and axis < len(shape)), f"bad axis for {name!r}")
        row = cls(name, tuple(shape), kind, bits, axis, ENCODINGS[encoding], num_bytes, stored)
        require(len(shape) <= MAX_TENSOR_DIMS, f"{name!r} has over {MAX_TENSOR_DIMS} dimensions")
        require(row.size <= MAX_ELEMENTS, f"{name!r} has over {MAX_ELEMENTS} elements")
        require(stored <= row.size, f"{name!r} stores more values than it has elements")
        # a record never needs more: scales and zero points, a varint per value, the value
        limit = 8 * row.num_scales + 24 * row.size + 64
        require(num_bytes <= limit, f"{name!r} claims a {num_bytes}-byte record")
        return row


def encode_header(spec: ModelSpec, rows: list[Row], entropy_coded: bool) -> bytes:
    """The v2 header: ``varint(length << 2 | entropy << 1 | deflated)`` then the JSON."""
    spec_part = [spec.architecture, spec.params, list(spec.input_shape), spec.num_classes]
    document = [*spec_part, spec.metadata, spec.modules, [row.to_json() for row in rows]]
    try:
        plain = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model spec or tensor names are not JSON-serialisable: {exc}") from exc
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(plain) + compressor.flush()
    payload, flag = (deflated, 1) if len(deflated) < len(plain) else (plain, 0)
    prefix = len(payload) << 2 | int(entropy_coded) << 1 | flag
    return encode_varints(np.array([prefix])) + payload


def parse_header(payload: bytes, deflated: bool, version: int) -> tuple[ModelSpec, list[Row]]:
    """Parse a header of format ``version`` (1 or 2).

    Raises:
        ArtifactError: The header is malformed.
    """
    try:
        if deflated:
            decompressor = zlib.decompressobj(-15)
            payload = decompressor.decompress(payload, _MAX_HEADER_BYTES)
            require(decompressor.eof, "compressed header is incomplete or too large")
        document = json.loads(payload)
        require(isinstance(document, list) and len(document) == 5 + version, "bad header")
        if version == 1:
            architecture, params, input_shape, num_classes, metadata, table = document
            modules: Any = {}
        else:
            architecture, params, input_shape, num_classes, metadata, modules, table = document
        require(isinstance(architecture, str), "architecture is not a string")
        require(isinstance(params, dict) and isinstance(metadata, dict), "bad params/metadata")
        require(isinstance(modules, dict), "bad module table")
        require(isinstance(input_shape, list) and all(map(_is_count, input_shape)), "bad shape")
        require(_is_count(num_classes) and isinstance(table, list), "bad num_classes/table")
        require(1 <= num_classes <= MAX_CLASSES, f"num_classes {num_classes} is out of range")
        require(
            1 <= len(input_shape) <= MAX_INPUT_DIMS
            and min(input_shape) >= 1
            and math.prod(input_shape) <= MAX_INPUT_ELEMENTS,
            f"input_shape {input_shape} is out of range",
        )
        spec = ModelSpec(architecture, params, tuple(input_shape), num_classes, metadata, modules)
        max_kind = KIND_ASYMMETRIC if version == 1 else KIND_BFLOAT16
        rows = [Row.from_json(item, max_kind) for item in table]
        require(len({row.name for row in rows}) == len(rows), "duplicate tensor names")
        total = sum(row.size for row in rows)
        require(total <= MAX_ELEMENTS, f"{total} elements exceed the {MAX_ELEMENTS} limit")
    except (zlib.error, json.JSONDecodeError, *DECODE_ERRORS) as exc:
        raise ArtifactError(f"artifact header is invalid ({exc}); {REEXPORT}") from exc
    return spec, rows
