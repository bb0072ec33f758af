"""Global unstructured magnitude pruning."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from fedsearch import (
    ComponentParams,
    CompressionContext,
    Compressor,
    Registrar,
    SearchRange,
    Weights,
    hookimpl,
)


def prunable_names(model: torch.nn.Module) -> list[str]:
    """Weights of linear and convolution layers (2-D and up); biases are kept."""
    return [name for name, param in model.named_parameters() if param.ndim >= 2]


def global_magnitude_masks(weights: Weights, names: list[str], sparsity: float) -> Weights:
    """Masks zeroing the ``round(sparsity * n)`` smallest-magnitude entries across ``names``.

    Same selection as ``torch.nn.utils.prune.global_unstructured`` with
    ``L1Unstructured``: the k smallest absolute values over all tensors together.
    """
    magnitudes = torch.cat([weights[name].detach().abs().reshape(-1) for name in names])
    flat_mask = torch.ones_like(magnitudes)
    count = round(sparsity * magnitudes.numel())
    if count:
        flat_mask[torch.topk(magnitudes, count, largest=False).indices] = 0.0
    masks, offset = {}, 0
    for name in names:
        size = weights[name].numel()
        masks[name] = flat_mask[offset : offset + size].reshape(weights[name].shape)
        offset += size
    return masks


class MagnitudeParams(ComponentParams):
    """Knobs of magnitude pruning."""

    sparsity: Annotated[float, Field(ge=0.0, le=0.99), SearchRange(0.0, 0.95, step=0.05)] = 0.5
    start_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    """Share of the rounds trained dense before the mask is fixed (at the server)."""


class MagnitudePruning(Compressor):
    """One-shot global magnitude pruning, then masked federated fine-tuning.

    After ``start_fraction`` of the rounds the server zeroes the smallest
    weights across all layers. The forward pass multiplies by the mask, so
    pruned weights get no gradient and stay zero through aggregation; clients
    see the zeros in the weights they receive.
    """

    name = "magnitude"
    stage = "prune"
    description = "global unstructured magnitude pruning"
    Params = MagnitudeParams

    def setup(self, context: CompressionContext) -> None:
        """Pick the prunable tensors and the round the mask is fixed."""
        self.names = prunable_names(context.model)
        start = round(self.params.start_fraction * context.num_rounds)
        self.start_round = min(start, context.num_rounds - 1)
        self.masks: Weights = {}

    def on_round_start(self, weights: Weights, round_index: int) -> None:
        """At the start round, fix the mask and zero the pruned weights."""
        if round_index == self.start_round and self.params.sparsity > 0:
            self.masks = global_magnitude_masks(weights, self.names, self.params.sparsity)
            for name, mask in self.masks.items():
                weights[name].mul_(mask)

    def transform_parameters(self, params: Weights) -> Weights:
        """Multiply the masked tensors by their masks."""
        if not self.masks:
            return params
        return {
            name: params[name] * self.masks[name] if name in self.masks else params[name]
            for name in params
        }


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register magnitude pruning."""
    register.compressor(MagnitudePruning)
