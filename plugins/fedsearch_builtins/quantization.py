"""Uniform integer quantization (QAT or post-training), mixed precision, and half floats."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import AfterValidator, Field

from fedsearch import (
    ComponentParams,
    CompressionContext,
    Compressor,
    FloatTensor,
    QuantizedTensor,
    Registrar,
    SearchChoices,
    StepContext,
    Weights,
    hookimpl,
)

FLOAT_BITS = 32
"""``bits = 32`` switches quantization off."""
CALIBRATION_CLIPS = tuple(1.0 - 0.05 * step for step in range(11))
"""Clipping ratios post-training calibration tries (1.0 down to 0.5)."""


def _check_bits(bits: int) -> int:
    if not (2 <= bits <= 8 or bits == FLOAT_BITS):
        raise ValueError(f"bits must be 2 to 8, or {FLOAT_BITS} to switch quantization off")
    return bits


Bits = Annotated[int, AfterValidator(_check_bits)]


def code_limits(bits: int, symmetric: bool) -> tuple[int, int]:
    """``(quant_min, quant_max)``: signed and symmetric around 0, or unsigned."""
    if symmetric:
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _reduce(weight: torch.Tensor, axis: int | None, largest: bool) -> torch.Tensor:
    if axis is None:
        return weight.max() if largest else weight.min()
    flat = weight.movedim(axis, 0).reshape(weight.shape[axis], -1)
    return flat.max(dim=1).values if largest else flat.min(dim=1).values


def affine_params(
    weight: torch.Tensor, bits: int, symmetric: bool, axis: int | None, clip: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale (float32) and zero point (int32) per tensor, or per channel along ``axis``.

    Symmetric: ``scale = clip * max|w| / quant_max``, zero point 0. Asymmetric:
    the range ``[min(w, 0), max(w, 0)]`` (times ``clip``) maps onto
    ``[0, 2**bits - 1]``, the zero point being the code of 0.0.
    """
    weight = weight.detach()
    low, high = code_limits(bits, symmetric)
    if symmetric:
        largest = _reduce(weight.abs(), axis, largest=True) * clip
        scale = largest / high
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    else:
        top = _reduce(weight, axis, largest=True).clamp(min=0) * clip
        bottom = _reduce(weight, axis, largest=False).clamp(max=0) * clip
        scale = (top - bottom) / (high - low)
        # torch.where, not boolean-mask indexing: this runs under torch.func.vmap
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        codes = torch.clamp(torch.round(-bottom / safe), low, high)
        zero_point = torch.where(scale > 0, codes, torch.zeros_like(codes)).to(torch.int32)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)).to(torch.float32)
    return scale.reshape(-1), zero_point.reshape(-1)


def _along(values: torch.Tensor, ndim: int, axis: int | None) -> torch.Tensor:
    shape = [1] * ndim
    if axis is not None:
        shape[axis] = -1
    return values.reshape(shape)


def quantize_codes(
    weight: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    limits: tuple[int, int],
    axis: int | None,
) -> torch.Tensor:
    """``clamp(round(w * (1 / scale)) + zero_point)``, exactly as torch's fake-quant kernels."""
    inverse = 1.0 / _along(scale, weight.ndim, axis)
    shifted = torch.round(weight.detach() * inverse) + _along(zero_point, weight.ndim, axis)
    return torch.clamp(shifted, *limits)


def dequantize_codes(
    codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int | None
) -> torch.Tensor:
    """``(codes - zero_point) * scale`` in float32, as the artifact decodes them."""
    centred = codes - _along(zero_point, codes.ndim, axis).to(torch.float32)
    return centred * _along(scale, codes.ndim, axis)


class QuantizerSpec:
    """How one tensor is quantized: width, scheme, granularity and clipping."""

    def __init__(self, bits: int, symmetric: bool, per_channel: bool, calibrate: bool) -> None:
        self.bits, self.symmetric, self.calibrate = bits, symmetric, calibrate
        self.axis = 0 if per_channel else None

    def params(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point; calibration picks the clip with the least squared error."""
        if not self.calibrate:
            return affine_params(weight, self.bits, self.symmetric, self.axis)
        best, best_error = None, float("inf")
        for clip in CALIBRATION_CLIPS:
            scale, zero_point = affine_params(weight, self.bits, self.symmetric, self.axis, clip)
            error = float((self.fake(weight, scale, zero_point) - weight).pow(2).sum())
            if error < best_error:
                best, best_error = (scale, zero_point), error
        assert best is not None
        return best

    def fake(
        self, weight: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor
    ) -> torch.Tensor:
        """The quantized values of ``weight`` (no gradient)."""
        limits = code_limits(self.bits, self.symmetric)
        codes = quantize_codes(weight, scale, zero_point, limits, self.axis)
        return dequantize_codes(codes, scale, zero_point, self.axis)

    def fake_quantize(self, weight: torch.Tensor) -> torch.Tensor:
        """Quantized forward, straight-through backward (the added term is exactly zero)."""
        scale, zero_point = self.params(weight)
        return self.fake(weight, scale, zero_point) + (weight - weight.detach())

    def stored(self, weight: torch.Tensor) -> QuantizedTensor:
        """Integer codes with scales (and zero points) for the artifact."""
        scale, zero_point = self.params(weight)
        codes = quantize_codes(weight, scale, zero_point, code_limits(self.bits, self.symmetric),
                               self.axis)  # fmt: skip
        return QuantizedTensor(
            codes=codes.to(torch.int32).numpy(),
            scale=scale.numpy(),
            bits=self.bits,
            axis=self.axis,
            zero_point=None if self.symmetric else zero_point.numpy(),
        )


def weight_names(model: torch.nn.Module) -> list[str]:
    """Names of the model's layer weights (parameters of two dimensions and more)."""
    return [name for name, param in model.named_parameters() if param.ndim >= 2]


class UniformParams(ComponentParams):
    """Knobs of uniform quantization."""

    bits: Annotated[Bits, SearchChoices([2, 3, 4, 6, 8])] = 8
    scheme: Literal["symmetric", "asymmetric"] = "symmetric"
    granularity: Literal["tensor", "channel"] = "tensor"
    """One scale per tensor, or one per output channel (row, filter)."""
    mode: Literal["qat", "ptq"] = "qat"
    """``qat``: train with fake quantization (straight-through estimator);
    ``ptq``: train in float, then calibrate each tensor's clipping range."""
    start_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    """QAT: share of the rounds trained in float before fake quantization starts."""


class UniformQuantization(Compressor):
    """Uniform integer quantization of layer weights, 2 to 8 bits.

    With ``mode = "qat"`` every local step sees fake-quantized weights and the
    gradient passes straight through; with ``"ptq"`` training stays in float and
    the clipping range of each tensor is calibrated after training (least
    squared error over clip ratios 1.0 to 0.5). The artifact stores the integer
    codes bit-packed with float32 scales (and int32 zero points when
    asymmetric). Biases stay float32.
    """

    name = "uniform"
    stage = "quantize"
    description = "uniform sym/asym, per tensor/channel, 2-8 bits, QAT or PTQ"
    Params = UniformParams

    def setup(self, context: CompressionContext) -> None:
        """Keep the model to find its layer weights each round."""
        self.model = context.model
        self.start_round = round(self.params.start_fraction * context.num_rounds)

    def bits_for(self, names: list[str]) -> dict[str, int]:
        """Bits of each layer weight (32: stays float)."""
        return dict.fromkeys(names, self.params.bits)

    def _specs(self) -> dict[str, QuantizerSpec]:
        params = self.params
        return {
            name: QuantizerSpec(
                bits,
                params.scheme == "symmetric",
                params.granularity == "channel",
                calibrate=params.mode == "ptq",
            )
            for name, bits in self.bits_for(weight_names(self.model)).items()
            if bits != FLOAT_BITS
        }

    def transform_parameters(self, params: Weights, step: StepContext) -> Weights:
        """Fake-quantize the layer weights: QAT from the start round, PTQ outside training."""
        # PTQ: training sees floats, every evaluation the calibrated model
        qat = self.params.mode == "qat"
        active = step.round >= self.start_round if qat else not step.training
        specs = self._specs() if active else {}
        if not specs:
            return params
        return {
            name: specs[name].fake_quantize(value) if name in specs else value
            for name, value in params.items()
        }

    def stored_tensors(self, params: Weights) -> dict[str, QuantizedTensor]:
        """Integer codes and scales of the layer weights."""
        return {name: spec.stored(params[name]) for name, spec in self._specs().items()}


class MixedParams(UniformParams):
    """Knobs of mixed precision: one bit width per layer group, searched."""

    bits: Bits = 8
    bits_first: Annotated[Bits, SearchChoices([2, 3, 4, 5, 6, 8])] = 8
    """Bits of the first layer."""
    bits_hidden: Annotated[Bits, SearchChoices([2, 3, 4, 5, 6, 8])] = 4
    """Bits of the layers between the first and the last."""
    bits_last: Annotated[Bits, SearchChoices([2, 3, 4, 5, 6, 8])] = 8
    """Bits of the last layer (the classifier)."""


class MixedPrecisionQuantization(UniformQuantization):
    """Uniform quantization with a bit width per layer group (first, hidden, last)."""

    name = "mixed"
    description = "mixed precision: bits of first, hidden and last layers searched"
    Params = MixedParams

    def bits_for(self, names: list[str]) -> dict[str, int]:
        """``bits_first`` for the first layer, ``bits_last`` for the last, else ``bits_hidden``."""
        params = self.params
        bits = dict.fromkeys(names, params.bits_hidden)
        if names:
            bits[names[0]] = params.bits_first
            bits[names[-1]] = params.bits_last
        return bits


class HalfParams(ComponentParams):
    """Knobs of half-precision storage."""

    dtype: Annotated[Literal["float16", "bfloat16"], SearchChoices(["float16", "bfloat16"])] = (
        "float16"
    )


class HalfPrecision(Compressor):
    """Every tensor trained and stored as float16 or bfloat16 (16 bits per value).

    The forward pass rounds the weights to the half type (straight-through
    gradient), so the artifact's values are exactly what training saw.
    """

    name = "half"
    stage = "quantize"
    description = "float16 or bfloat16 weights"
    Params = HalfParams

    def setup(self, context: CompressionContext) -> None:
        """Nothing to prepare."""
        self.dtype = getattr(torch, self.params.dtype)

    def _round(self, value: torch.Tensor) -> torch.Tensor:
        return value.detach().to(self.dtype).to(value.dtype) + (value - value.detach())

    def transform_parameters(self, params: Weights, step: StepContext) -> Weights:
        """Round floating tensors to the half type."""
        return {
            name: self._round(value) if value.is_floating_point() else value
            for name, value in params.items()
        }

    def stored_tensors(self, params: Weights) -> dict[str, FloatTensor]:
        """16-bit floats for every floating tensor."""
        stored = {}
        for name, value in params.items():
            if not value.is_floating_point():
                continue
            values = value.detach().to(torch.float32).contiguous().numpy()
            if self.params.dtype == "float16":
                stored[name] = FloatTensor(values.astype("float16"))
            else:
                stored[name] = FloatTensor(values, bfloat16=True)
        return stored


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register uniform, mixed-precision and half-precision quantization."""
    register.compressor(UniformQuantization)
    register.compressor(MixedPrecisionQuantization)
    register.compressor(HalfPrecision)
