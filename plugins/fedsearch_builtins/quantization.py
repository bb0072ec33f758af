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
CALIBRATION_CLIPS = tuple(round(1.0 - 0.05 * step, 2) for step in range(20))
"""Clipping ratios the least-squared-error step search tries (1.0 down to 0.05)."""
LOW_BITS = 3
"""At this width and below, ``auto`` settings use per-channel scales and the searched step."""


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
    weight: torch.Tensor, bits: int, symmetric: bool, axis: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale (float32) and zero point (int32) per tensor, or per channel along ``axis``.

    Symmetric: ``scale = max|w| / quant_max``, zero point 0. Asymmetric:
    the range ``[min(w, 0), max(w, 0)]`` maps onto
    ``[0, 2**bits - 1]``, the zero point being the code of 0.0.
    """
    weight = weight.detach()
    low, high = code_limits(bits, symmetric)
    if symmetric:
        largest = _reduce(weight.abs(), axis, largest=True)
        scale = largest / high
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    else:
        top = _reduce(weight, axis, largest=True).clamp(min=0)
        bottom = _reduce(weight, axis, largest=False).clamp(max=0)
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

    def params(
        self, weight: torch.Tensor, clip: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point: from the full range, or the least-squared-error step.

        With ``calibrate`` each scale (each channel's, when per channel) is the
        full-range scale times the ratio of ``CALIBRATION_CLIPS`` whose
        quantized values are closest to the weights in squared error: the
        MSE-optimal clipping of Banner et al. 2019 and Choukroun et al. 2019,
        searched on a grid instead of solved for a fitted distribution. The
        zero point stays that of the full range (clipping both ends by one ratio
        keeps the code of 0.0). All candidates are evaluated in one batch of
        tensor operations, so it runs under ``vmap`` and costs a few fake
        quantizations, not one per ratio. A given ``clip`` (the ratios
        ``clip_ratios`` chose earlier) skips the search.
        """
        scale, zero_point = affine_params(weight, self.bits, self.symmetric, self.axis)
        if not self.calibrate:
            return scale, zero_point
        if clip is not None:
            return scale * clip, zero_point
        return scale * self.clip_ratios(weight), zero_point

    def clip_ratios(self, weight: torch.Tensor) -> torch.Tensor:
        """Per scale, the ratio of ``CALIBRATION_CLIPS`` with the least squared error."""
        scale, zero_point = affine_params(weight, self.bits, self.symmetric, self.axis)
        rows = weight.detach().movedim(self.axis or 0, 0).reshape(len(scale), -1)
        ratios = torch.tensor(CALIBRATION_CLIPS, dtype=scale.dtype, device=scale.device)
        candidates = ratios.unsqueeze(1) * scale  # (ratios, scales)
        steps = candidates.unsqueeze(2)
        zero = zero_point.reshape(1, -1, 1).to(torch.float32)
        codes = torch.clamp(
            torch.round(rows * (1.0 / steps)) + zero, *code_limits(self.bits, self.symmetric)
        )
        errors = ((codes - zero) * steps - rows).square().sum(dim=2)
        best = errors.argmin(dim=0, keepdim=True)
        return ratios.unsqueeze(1).expand_as(candidates).gather(0, best)[0]

    def fake(
        self, weight: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor
    ) -> torch.Tensor:
        """The quantized values of ``weight`` (no gradient)."""
        limits = code_limits(self.bits, self.symmetric)
        codes = quantize_codes(weight, scale, zero_point, limits, self.axis)
        return dequantize_codes(codes, scale, zero_point, self.axis)

    def fake_quantize(self, weight: torch.Tensor, clip: torch.Tensor | None = None) -> torch.Tensor:
        """Quantized forward, straight-through backward (the added term is exactly zero)."""
        scale, zero_point = self.params(weight, clip)
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


class QuantizerParams(ComponentParams):
    """Knobs every uniform quantizer shares: scheme, granularity, step, mode."""

    scheme: Literal["auto", "symmetric", "asymmetric"] = "auto"
    """``symmetric``: signed codes around 0 (``2**bits - 1`` levels, zero point
    0); ``asymmetric``: the range ``[min, max]`` on all ``2**bits`` codes with a
    zero point; ``auto``: asymmetric at 2 bits, where a symmetric code has only
    three levels (-1, 0, 1) and an asymmetric one four, symmetric above."""
    granularity: Literal["auto", "tensor", "channel"] = "auto"
    """One scale per tensor, or one per output channel (row, filter); ``auto``:
    per channel at 2 and 3 bits, per tensor above."""
    step: Literal["auto", "max", "mse"] = "auto"
    """How each scale is set: ``max``: the full range (``max|w|``); ``mse``: the
    clipping ratio with the least squared quantization error; ``auto``:
    ``mse`` at 2 and 3 bits and in PTQ, ``max`` otherwise."""
    mode: Literal["qat", "ptq"] = "qat"
    """``qat``: train with fake quantization (straight-through estimator);
    ``ptq``: train in float, then quantize (with the ``auto`` step: calibrated)."""
    start_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    """QAT: share of the rounds trained in float before fake quantization starts."""


class UniformParams(QuantizerParams):
    """Knobs of uniform quantization: one width for every layer weight."""

    bits: Annotated[Bits, SearchChoices([2, 3, 4, 6, 8])] = 8
    ends: Literal["auto", "same", "int8"] = "auto"
    """Width of the first and the last layer: ``same`` as ``bits``; ``int8``:
    8 bits; ``auto``: 8 bits when ``bits`` is 2 or 3 and other layers lie
    between the two (which keep ``bits``), else ``same``. These two
    layers hold few weights and lose the most accuracy at very low widths,
    which is why low-bit work since DoReFa-Net (Zhou et al. 2016) and LSQ
    (Esser et al. 2020) keeps them at 8 bits."""


class UniformQuantization(Compressor):
    """Uniform integer quantization of layer weights, 2 to 8 bits.

    With ``mode = "qat"`` every local step sees fake-quantized weights and the
    gradient passes straight through; with ``"ptq"`` training stays in float and
    the weights are quantized after training. At 2 and 3 bits the full range
    (``max|w|``) wastes the few levels there are (at 2 bits, three levels that
    round nearly every weight to zero), so by default those widths use one
    scale per output channel and the step with the least squared error (clip
    ratios 1.0 to 0.05 of the range), as does PTQ, keep the first and last
    layers at 8 bits (``ends``), and 2 bits use all four codes (asymmetric).
    The artifact stores the integer
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
        self.round_clips: dict[str, torch.Tensor] = {}

    def on_local_training_start(self, received: Weights, round_index: int) -> None:
        """Choose each searched step's clip ratio once, from the weights the clients received.

        The least-squared-error search costs a few fake quantizations of every
        weight; done at every local step it doubled the quickstart's time. The
        ratio moves little within a round, so local training reuses the ratio
        chosen on the round's starting weights (what every client of the group
        received); evaluation and the artifact search afresh on their weights.
        """
        self.round_clips = {}
        if self.params.mode == "qat" and round_index >= self.start_round:
            self.round_clips = {
                name: spec.clip_ratios(received[name])
                for name, spec in self._specs().items()
                if spec.calibrate
            }

    def bits_for(self, names: list[str]) -> dict[str, int]:
        """Bits of each layer weight (32: stays float)."""
        params = self.params
        bits = dict.fromkeys(names, params.bits)
        low = params.bits <= LOW_BITS and len(names) > 2  # a layer between them stays low
        if names and (params.ends == "int8" or (params.ends == "auto" and low)):
            bits[names[0]] = bits[names[-1]] = max(params.bits, 8)
        return bits

    def _specs(self) -> dict[str, QuantizerSpec]:
        return {
            name: self._spec(bits)
            for name, bits in self.bits_for(weight_names(self.model)).items()
            if bits != FLOAT_BITS
        }

    def _spec(self, bits: int) -> QuantizerSpec:
        """The quantizer of a tensor of ``bits``, with the ``auto`` settings resolved."""
        params, low = self.params, bits <= LOW_BITS
        per_channel = params.granularity == "channel" or (params.granularity == "auto" and low)
        searched = params.step == "mse" or (params.step == "auto" and (low or params.mode == "ptq"))
        symmetric = params.scheme == "symmetric" or (params.scheme == "auto" and bits > 2)
        return QuantizerSpec(bits, symmetric, per_channel, calibrate=searched)

    def transform_parameters(self, params: Weights, step: StepContext) -> Weights:
        """Fake-quantize the layer weights: QAT from the start round, PTQ outside training."""
        # PTQ: training sees floats, every evaluation the calibrated model
        qat = self.params.mode == "qat"
        active = step.round >= self.start_round if qat else not step.training
        specs = self._specs() if active else {}
        if not specs:
            return params
        clips = self.round_clips if step.training else {}
        return {
            name: specs[name].fake_quantize(value, clips.get(name)) if name in specs else value
            for name, value in params.items()
        }

    def stored_tensors(self, params: Weights) -> dict[str, QuantizedTensor]:
        """Integer codes and scales of the layer weights."""
        return {name: spec.stored(params[name]) for name, spec in self._specs().items()}


class MixedParams(QuantizerParams):
    """Knobs of mixed precision: one bit width per layer group, searched."""

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
