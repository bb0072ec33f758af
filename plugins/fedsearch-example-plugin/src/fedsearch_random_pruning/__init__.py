"""An example third-party fedsearch plugin: random pruning, a stateful compressor, a middleware."""

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
    StepContext,
    Weights,
    hookimpl,
)
from fedsearch_random_pruning._label_prior import LogitAdjustment
from fedsearch_random_pruning._noise import GaussianNoise

__all__ = ["GaussianNoise", "LogitAdjustment", "RandomPruning"]


class RandomPruningParams(ComponentParams):
    """Knobs of random pruning; the ``SearchRange`` makes ``sparsity`` searchable."""

    sparsity: Annotated[float, Field(ge=0.0, le=0.99), SearchRange(0.1, 0.9, step=0.1)] = 0.5
    seed: int = 0


class RandomPruning(Compressor):
    """Zero a random ``sparsity`` share of each layer's weights from the first round."""

    name = "random"
    stage = "prune"
    description = "random unstructured pruning (baseline)"
    Params = RandomPruningParams

    def setup(self, context: CompressionContext) -> None:
        """Draw one fixed random mask per weight matrix or kernel."""
        generator = torch.Generator().manual_seed(self.params.seed)
        self.masks = {
            name: (torch.rand(param.shape, generator=generator) >= self.params.sparsity).float()
            for name, param in context.model.named_parameters()
            if param.ndim >= 2
        }

    def on_round_start(self, weights: Weights, round_index: int) -> None:
        """Zero the pruned weights before the first broadcast."""
        if round_index == 0:
            for name, mask in self.masks.items():
                weights[name].mul_(mask)

    def transform_parameters(self, params: Weights, step: StepContext) -> Weights:
        """Keep pruned weights at zero in every forward pass."""
        return {
            name: value * self.masks[name] if name in self.masks else value
            for name, value in params.items()
        }


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Contribute ``random`` pruning, ``logit_adjust`` and the ``gaussian_noise`` middleware."""
    register.compressor(RandomPruning)
    register.compressor(LogitAdjustment)
    register.middleware(GaussianNoise)
