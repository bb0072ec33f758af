"""Small pure helpers shared by the training paths: weights, transforms, proximal term."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fedsearch.components import Compressor, Weights


def model_weights(model: nn.Module) -> Weights:
    """Detached copies of the model's parameters and buffers (its weights)."""
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def transformed(weights: Weights, compressors: Sequence[Compressor]) -> Weights:
    """The weights the forward pass sees after every compressor's transform."""
    for compressor in compressors:
        weights = compressor.transform_parameters(weights)
    return weights


def proximal_term(
    params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor], mu: float
) -> torch.Tensor | float:
    """FedProx's ``mu / 2 * sum ||w - w_global||^2`` (0 when ``mu`` is 0)."""
    if mu == 0.0:
        return 0.0
    return 0.5 * mu * sum(((p - a) ** 2).sum() for p, a in zip(params, anchors, strict=True))
