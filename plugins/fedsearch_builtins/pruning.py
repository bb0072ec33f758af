"""Unstructured magnitude pruning: global or per layer, one-shot or gradual (Zhu & Gupta)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field, model_validator

from fedsearch import (
    ComponentParams,
    CompressionContext,
    Compressor,
    Registrar,
    SearchRange,
    StepContext,
    Weights,
    hookimpl,
)

Fraction = Annotated[float, Field(ge=0.0, le=0.99)]


def prunable_names(model: torch.nn.Module) -> list[str]:
    """Weights of linear and convolution layers (2-D and up); biases are kept."""
    return [name for name, param in model.named_parameters() if param.ndim >= 2]


def _smallest_mask(magnitudes: torch.Tensor, count: int) -> torch.Tensor:
    mask = torch.ones_like(magnitudes)
    if count:
        mask[torch.topk(magnitudes, count, largest=False).indices] = 0.0
    return mask


def global_magnitude_masks(weights: Weights, names: list[str], sparsity: float) -> Weights:
    """Masks zeroing the ``round(sparsity * n)`` smallest-magnitude entries across ``names``.

    Same selection as ``torch.nn.utils.prune.global_unstructured`` with
    ``L1Unstructured``: the k smallest absolute values over all tensors together.
    """
    magnitudes = torch.cat([weights[name].detach().abs().reshape(-1) for name in names])
    flat_mask = _smallest_mask(magnitudes, round(sparsity * magnitudes.numel()))
    masks, offset = {}, 0
    for name in names:
        size = weights[name].numel()
        masks[name] = flat_mask[offset : offset + size].reshape(weights[name].shape)
        offset += size
    return masks


def layer_magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Mask zeroing the ``round(sparsity * n)`` smallest entries of one tensor.

    Same selection as ``torch.nn.utils.prune.l1_unstructured``.
    """
    magnitudes = weight.detach().abs().reshape(-1)
    return _smallest_mask(magnitudes, round(sparsity * magnitudes.numel())).reshape(weight.shape)


def cubic_sparsity(final: float, step: int, start: int, end: int, initial: float = 0.0) -> float:
    """Zhu & Gupta (2017) gradual schedule: ``s_f + (s_i - s_f) * (1 - (t - t0) / n)^3``.

    Args:
        final: Target sparsity ``s_f``, reached at ``end``.
        step: Current step (here: federated round).
        start: First pruning step ``t0``.
        end: Step at which ``final`` is reached (``t0 + n``).
        initial: Sparsity ``s_i`` at ``start``.
    """
    if step < start:
        return 0.0
    if step >= end:
        return final
    progress = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - progress) ** 3


class MagnitudeParams(ComponentParams):
    """Knobs of magnitude pruning."""

    sparsity: Annotated[Fraction, SearchRange(0.0, 0.95, step=0.05)] = 0.5
    scope: Literal["global", "layer"] = "global"
    """``global``: one threshold across layers; ``layer``: each layer pruned to its rate."""
    schedule: Literal["one_shot", "gradual"] = "one_shot"
    """``one_shot``: the mask is fixed once; ``gradual``: Zhu & Gupta's cubic ramp."""
    start_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    """Share of the rounds trained dense before pruning starts (at the server)."""
    end_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8
    """Share of the rounds after which the gradual schedule reaches ``sparsity``."""
    sparsity_first: Fraction | None = None
    """Per-layer scope: rate of the first layer (None: ``sparsity``)."""
    sparsity_last: Fraction | None = None
    """Per-layer scope: rate of the last layer (None: ``sparsity``)."""

    @model_validator(mode="after")
    def _check_fractions(self) -> MagnitudeParams:
        if self.schedule == "gradual" and self.end_fraction < self.start_fraction:
            raise ValueError("end_fraction must be at least start_fraction")
        return self


class MagnitudePruning(Compressor):
    """Unstructured magnitude pruning at the server, then masked federated training.

    From round ``start_fraction * R`` the server zeroes the smallest weights,
    across all layers (``scope = "global"``) or per layer. With ``schedule =
    "gradual"`` the sparsity follows Zhu & Gupta's cubic ramp up to
    ``end_fraction * R``, one mask update per round. The forward pass multiplies
    by the mask, so pruned weights get no gradient and stay zero through
    aggregation; the server re-applies the mask each round all the same.

    No side channel: the server's masks never reach a client. A client
    applies the zero pattern of the weights it received (exactly the server's
    mask over a lossless downlink; whatever survived a lossy or delta downlink
    otherwise), from the round the public schedule starts pruning; evaluation
    and the artifact use the server's masks.
    """

    name = "magnitude"
    stage = "prune"
    description = "unstructured magnitude pruning (global/per layer, one-shot/gradual)"
    Params = MagnitudeParams

    def setup(self, context: CompressionContext) -> None:
        """Keep the model; compute the pruning rounds."""
        self.model = context.model
        self.start_round = context.round_at(self.params.start_fraction)
        end = context.round_at(self.params.end_fraction)
        self.end_round = self.start_round if self.params.schedule == "one_shot" else end
        self.end_round = max(self.end_round, self.start_round)
        self.masks: Weights = {}

    def target_sparsity(self, round_index: int) -> float:
        """Sparsity the schedule asks for at ``round_index``."""
        if round_index < self.start_round:
            return 0.0
        if self.end_round == self.start_round:
            return self.params.sparsity
        return cubic_sparsity(self.params.sparsity, round_index, self.start_round, self.end_round)

    def on_round_start(self, weights: Weights, round_index: int) -> None:
        """Update the mask while the schedule runs, and keep pruned weights zero."""
        if self.start_round <= round_index <= self.end_round:
            fraction = self.target_sparsity(round_index) / max(self.params.sparsity, 1e-12)
            if self.params.sparsity > 0:
                self.masks = self._masks(weights, fraction)
        for name, mask in self.masks.items():
            weights[name].mul_(mask)

    def _masks(self, weights: Weights, fraction: float) -> Weights:
        names = prunable_names(self.model)
        if self.params.scope == "global":
            return global_magnitude_masks(weights, names, self.params.sparsity * fraction)
        rates = {name: self.params.sparsity for name in names}
        if self.params.sparsity_first is not None:
            rates[names[0]] = self.params.sparsity_first
        if self.params.sparsity_last is not None:
            rates[names[-1]] = self.params.sparsity_last
        return {name: layer_magnitude_mask(weights[name], rates[name] * fraction) for name in names}

    def transform_parameters(self, params: Weights, step: StepContext) -> Weights:
        """Multiply the prunable tensors by their masks (on a client: their zero pattern)."""
        if step.training:
            if step.round < self.start_round or self.params.sparsity == 0:
                return params
            # read every time: factorisation or structured pruning may rename layers
            names = prunable_names(self.model)
            masks = {name: (params[name].detach() != 0).to(params[name].dtype) for name in names}
        else:
            masks = self.masks
        if not masks:
            return params
        return {
            name: params[name] * masks[name] if name in masks else params[name] for name in params
        }


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register magnitude pruning."""
    register.compressor(MagnitudePruning)
