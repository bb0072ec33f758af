"""Uniform symmetric weight quantization with quantization-aware training."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import AfterValidator

from fedsearch import (
    ComponentParams,
    CompressionContext,
    Compressor,
    QuantizedTensor,
    Registrar,
    SearchChoices,
    Weights,
    hookimpl,
)

FLOAT_BITS = 32
"""``bits = 32`` switches quantization off."""


def _check_bits(bits: int) -> int:
    if not (2 <= bits <= 8 or bits == FLOAT_BITS):
        raise ValueError(f"bits must be 2 to 8, or {FLOAT_BITS} to switch quantization off")
    return bits


def symmetric_codes(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes in ``[-(2**(bits-1)-1), 2**(bits-1)-1]`` and the per-tensor scale.

    ``codes * scale`` (float32) is the quantized tensor; the scale maps the
    largest magnitude onto the largest code.
    """
    levels = 2 ** (bits - 1) - 1
    largest = weight.detach().abs().max()
    scale = torch.where(largest > 0, largest / levels, torch.ones_like(largest)).reshape(1)
    codes = torch.clamp(torch.round(weight.detach() / scale), -levels, levels)
    return codes, scale


def fake_quantize(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize in the forward pass, pass gradients straight through in the backward.

    The value is exactly ``codes * scale`` (adding ``w - w.detach()``, which is
    exactly zero, keeps the gradient with respect to ``w`` equal to one).
    """
    codes, scale = symmetric_codes(weight, bits)
    return codes * scale + (weight - weight.detach())


class UniformParams(ComponentParams):
    """Knobs of uniform quantization."""

    bits: Annotated[int, AfterValidator(_check_bits), SearchChoices([2, 3, 4, 6, 8])] = 8


class UniformQuantization(Compressor):
    """Per-tensor uniform symmetric quantization of layer weights, trained with QAT.

    Every local step sees fake-quantized weights (straight-through estimator),
    and the artifact stores the integer codes bit-packed at ``bits`` bits plus
    one float32 scale per tensor. Biases stay float32.
    """

    name = "uniform"
    stage = "quantize"
    description = "uniform symmetric quantization, 2-8 bits, with QAT"
    Params = UniformParams

    def setup(self, context: CompressionContext) -> None:
        """Quantize the weights of linear and convolution layers."""
        self.names = [name for name, param in context.model.named_parameters() if param.ndim >= 2]
        self.active = self.params.bits != FLOAT_BITS

    def transform_parameters(self, params: Weights) -> Weights:
        """Fake-quantize the layer weights."""
        if not self.active:
            return params
        return {
            name: fake_quantize(params[name], self.params.bits)
            if name in self.names
            else params[name]
            for name in params
        }

    def stored_tensors(self, params: Weights) -> dict[str, QuantizedTensor]:
        """Integer codes and scales of the layer weights."""
        if not self.active:
            return {}
        stored = {}
        for name in self.names:
            codes, scale = symmetric_codes(params[name], self.params.bits)
            stored[name] = QuantizedTensor(
                codes=codes.to(torch.int32).numpy(), scale=scale.numpy(), bits=self.params.bits
            )
        return stored


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register uniform quantization."""
    register.compressor(UniformQuantization)
