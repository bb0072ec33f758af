"""What an artifact holds: a model spec and tensors stored as integer codes or floats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fedsearch.artifact._bitpack import check_bits

FLOAT_DTYPES: tuple[np.dtype, ...] = (np.dtype(np.float32), np.dtype(np.float16))
"""Dtypes a :class:`FloatTensor` may hold."""


def code_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """Smallest and largest code a ``bits``-bit quantizer may produce.

    Args:
        bits: Code width, 1..16.
        symmetric: True for signed codes around zero (no zero point), False
            for unsigned codes with a zero point.

    Returns:
        ``(-(2**(bits-1) - 1), 2**(bits-1) - 1)`` when symmetric, else
        ``(0, 2**bits - 1)``.
    """
    if symmetric:
        half = (1 << (bits - 1)) - 1
        return -half, half
    return 0, (1 << bits) - 1


def _normalise_axis(axis: int | None, ndim: int) -> int | None:
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise ValueError(f"axis must be an int or None, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for codes with {ndim} dimensions")
    return int(axis) % ndim


def _as_channel_array(
    values: np.ndarray, expected: tuple[int, ...], name: str, dtype: type
) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 0 and expected == (1,):
        array = array.reshape(1)
    if array.shape != expected:
        raise ValueError(
            f"{name} must have shape {expected} (one per tensor, or one per channel of "
            f"`axis`), got {array.shape}"
        )
    return array.astype(dtype)


def channel_shape(ndim: int, axis: int | None) -> tuple[int, ...]:
    """Shape that broadcasts per-channel values along ``axis`` of an ``ndim``-d tensor."""
    shape = [1] * ndim
    if axis is not None:
        shape[axis] = -1
    return tuple(shape)


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """Integer codes with float32 scales: ``value = (codes - zero_point) * scale``.

    Scales and zero points broadcast along ``axis`` for per-channel
    quantization. Symmetric tensors (``zero_point`` is None) hold signed codes
    in ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``; asymmetric ones hold codes in
    ``[0, 2**bits - 1]``. Zero points may be any int32.

    On construction ``scale`` becomes a float32 array (a 0-d per-tensor scale
    is reshaped to ``(1,)``), ``zero_point`` an int32 array and a negative
    ``axis`` is normalised to its non-negative equivalent.

    Attributes:
        codes: Integer array with the tensor's shape.
        scale: Float32, shape ``(1,)`` per tensor or ``(codes.shape[axis],)``.
        bits: Storage width of one code, 1..16.
        axis: Channel axis of per-channel scales and zero points; None means
            per tensor.
        zero_point: Int32 with the shape of ``scale``; None means 0 (symmetric).

    Raises:
        ValueError: If ``bits`` is not in 1..16, ``codes`` is not an integer
            array or holds a code outside the range ``bits`` allow, ``axis``
            is out of range, or ``scale`` / ``zero_point`` have the wrong shape
            or ``scale`` holds a non-finite or non-positive value.
    """

    codes: np.ndarray
    scale: np.ndarray
    bits: int
    axis: int | None = None
    zero_point: np.ndarray | None = None

    def __post_init__(self) -> None:
        bits = check_bits(self.bits)
        codes = np.asarray(self.codes)
        if not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"codes must be an integer array, got dtype {codes.dtype}")
        axis = _normalise_axis(self.axis, codes.ndim)
        expected = (1,) if axis is None else (codes.shape[axis],)
        scale = _as_channel_array(self.scale, expected, "scale", np.float32)
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError(f"scales must be finite and positive, got {scale.tolist()[:8]}")
        zero_point = self.zero_point
        if zero_point is not None:
            zero_point = self._checked_zero_point(zero_point, expected)
        self._check_codes(codes, bits, symmetric=zero_point is None)
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "axis", axis)
        object.__setattr__(self, "zero_point", zero_point)

    @staticmethod
    def _checked_zero_point(zero_point: np.ndarray, expected: tuple[int, ...]) -> np.ndarray:
        array = np.asarray(zero_point)
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"zero_point must be an integer array, got dtype {array.dtype}")
        info = np.iinfo(np.int32)
        if array.size and (int(array.min()) < info.min or int(array.max()) > info.max):
            raise ValueError("zero_point values must fit in int32")
        return _as_channel_array(array, expected, "zero_point", np.int32)

    @staticmethod
    def _check_codes(codes: np.ndarray, bits: int, symmetric: bool) -> None:
        if codes.size == 0:
            return
        low, high = code_range(bits, symmetric)
        found_low, found_high = int(codes.min()), int(codes.max())
        if found_low < low or found_high > high:
            kind = "symmetric (no zero_point)" if symmetric else "asymmetric (with zero_point)"
            raise ValueError(
                f"codes must be in [{low}, {high}] for {bits}-bit {kind} quantization, "
                f"got min {found_low}, max {found_high}; clamp the codes or raise `bits`"
            )

    @property
    def is_symmetric(self) -> bool:
        """True when there is no zero point (codes are signed around 0)."""
        return self.zero_point is None

    def zero_code_array(self) -> np.ndarray:
        """The code that means 0.0, broadcastable against ``codes`` (int32)."""
        if self.zero_point is None:
            return np.zeros([1] * self.codes.ndim, dtype=np.int32)
        return self.zero_point.reshape(channel_shape(self.codes.ndim, self.axis))

    def dequantize(self) -> np.ndarray:
        """Float32 values: ``(codes - zero_point) * scale`` in float32 arithmetic.

        Computed as ``(codes.astype(float32) - zp.astype(float32)) * scale``,
        which torch reproduces bitwise as ``(codes.float() - zp.float()) * scale``.
        """
        shape = channel_shape(self.codes.ndim, self.axis)
        centred = self.codes.astype(np.float32) - self.zero_code_array().astype(np.float32)
        return np.ascontiguousarray(centred * self.scale.reshape(shape), dtype=np.float32)


@dataclass(frozen=True, eq=False)
class FloatTensor:
    """A tensor stored as plain floats.

    Values round-trip bit for bit, except that -0.0 counts as a zero and so
    comes back as +0.0 when the record is stored sparse.

    Attributes:
        values: Float32 or float16 array (non-native byte order is converted).
        bfloat16: Store 16 bits per value as bfloat16: float32 ``values`` are
            rounded to the nearest bfloat16 (ties to even) on construction.

    Raises:
        ValueError: If ``values`` is neither float32 nor float16, or float16
            with ``bfloat16``.
    """

    values: np.ndarray
    bfloat16: bool = False

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.dtype.kind == "f" and not values.dtype.isnative:
            values = values.astype(values.dtype.newbyteorder("="))
        if values.dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"FloatTensor values must be float32 or float16, got {values.dtype}; "
                "cast them first"
            )
        if self.bfloat16:
            if values.dtype != np.float32:
                raise ValueError("bfloat16 FloatTensor values must be float32")
            rounded = torch.from_numpy(np.ascontiguousarray(values)).to(torch.bfloat16)
            values = rounded.to(torch.float32).numpy()
        object.__setattr__(self, "values", values)

    def dequantize(self) -> np.ndarray:
        """A float32 copy of the values."""
        return np.array(self.values, dtype=np.float32, order="C", copy=True)


StoredTensor = QuantizedTensor | FloatTensor
"""How one tensor is stored in an artifact."""


def stored_bits(tensor: StoredTensor) -> int:
    """Bits one stored value of ``tensor`` takes: ``bits``, or 32/16 for floats."""
    if isinstance(tensor, QuantizedTensor):
        return tensor.bits
    if tensor.bfloat16:
        return 16
    return tensor.values.dtype.itemsize * 8


def nonzero_positions(tensor: StoredTensor) -> np.ndarray:
    """Flat (C-order) positions of the elements that are not zero.

    Zero means a code equal to the zero point for quantized tensors and a
    value equal to 0.0 for floats. That includes -0.0 (what masking a negative
    weight gives), so a sparse record brings -0.0 back as +0.0.
    """
    if isinstance(tensor, QuantizedTensor):
        return np.flatnonzero(tensor.codes != tensor.zero_code_array())
    return np.flatnonzero(tensor.values != 0)


@dataclass(frozen=True)
class ModelSpec:
    """Enough to rebuild the module the tensors belong to.

    Attributes:
        architecture: Architecture component name, e.g. ``"mlp"``.
        params: JSON-serialisable params of that architecture (tuples in it
            come back as lists).
        input_shape: Shape of one input example.
        num_classes: Number of output classes.
        metadata: Small JSON-serialisable extras, e.g. the trial number.
        modules: Module overrides: submodules that compression replaced
            (resized by structured pruning, factorised by low-rank), by their
            path in the module tree, as ``fedsearch.artifact.describe_module``
            writes them. The loader builds the architecture, then swaps these in.
    """

    architecture: str
    params: dict[str, Any]
    input_shape: tuple[int, ...]
    num_classes: int
    metadata: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(size) for size in self.input_shape))
        object.__setattr__(self, "num_classes", int(self.num_classes))


@dataclass(frozen=True, eq=False)
class Artifact:
    """A decoded artifact.

    Attributes:
        spec: How to rebuild the module.
        tensors: Stored tensors by name, in the order they were encoded.
    """

    spec: ModelSpec
    tensors: dict[str, StoredTensor]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Float32, contiguous torch tensors by name, ready for ``load_state_dict``."""
        return {
            name: torch.from_numpy(tensor.dequantize()).contiguous()
            for name, tensor in self.tensors.items()
        }


@dataclass(frozen=True)
class TensorReport:
    """One tensor of :func:`describe_artifact`.

    Attributes:
        name: Tensor name.
        shape: Tensor shape.
        kind: ``"float32"``, ``"float16"``, ``"bfloat16"`` or ``"quantized"``.
        bits: Bits per stored value.
        sparsity: Fraction of zeros (codes equal to the zero point when quantized).
        encoding: ``"dense"``, ``"bitmap"`` or ``"index"``.
        num_bytes: Bytes of this tensor's record in the body.
    """

    name: str
    shape: tuple[int, ...]
    kind: str
    bits: int
    sparsity: float
    encoding: str
    num_bytes: int
