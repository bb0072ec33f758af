"""Small pure helpers shared by the training paths: weights, transforms, proximal term."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fedsearch.components import Compressor, StepContext, Weights


def model_weights(model: nn.Module) -> Weights:
    """Detached copies of the model's parameters and buffers (its weights)."""
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def clip_gradients(
    gradients: Sequence[torch.Tensor], max_norm: float | None, *, per_client: bool = False
) -> Sequence[torch.Tensor]:
    """``gradients`` scaled to a joint L2 norm of at most ``max_norm`` (none: unchanged).

    The factor is ``torch.nn.utils.clip_grad_norm_``'s, ``max_norm / (norm +
    1e-6)`` capped at 1; ``per_client``: dimension 0 indexes clients (the
    vectorized path), each clipped by its own norm.
    """
    if max_norm is None:
        return gradients
    if not per_client:
        factor = (max_norm / (torch.nn.utils.get_total_norm(gradients) + 1e-6)).clamp(max=1.0)
        return [gradient * factor for gradient in gradients]
    rows = [torch.linalg.vector_norm(gradient.flatten(1), dim=1) for gradient in gradients]
    factors = (max_norm / (torch.linalg.vector_norm(torch.stack(rows), dim=0) + 1e-6)).clamp(
        max=1.0
    )
    return [g * factors.reshape(-1, *[1] * (g.ndim - 1)) for g in gradients]


def transformed(
    weights: Weights, compressors: Sequence[Compressor], steps: Sequence[StepContext]
) -> Weights:
    """The weights the forward pass sees after every compressor's transform.

    Args:
        weights: The weights to transform.
        compressors: The trial's compressors, in stage order.
        steps: One context per compressor (see ``step_contexts``).
    """
    for compressor, step in zip(compressors, steps, strict=True):
        weights = compressor.transform_parameters(weights, step)
    return weights


def step_contexts(
    compressors: Sequence[Compressor],
    round_index: int,
    *,
    client: int | None = None,
    training: bool = False,
    states: Sequence[Any] = (),
) -> list[StepContext]:
    """One ``StepContext`` per compressor; ``states`` holds each one's state for ``client``."""
    return [
        StepContext(round_index, client, training, states[position] if states else None)
        for position in range(len(compressors))
    ]


def proximal_term(
    params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor], mu: float
) -> torch.Tensor | float:
    """FedProx's ``mu / 2 * sum ||w - w_global||^2`` (0 when ``mu`` is 0)."""
    if mu == 0.0:
        return 0.0
    return 0.5 * mu * sum(((p - a) ** 2).sum() for p, a in zip(params, anchors, strict=True))


@dataclass(frozen=True)
class LocalSGD:
    """What one round of local SGD needs, on any execution path.

    Attributes:
        model: The architecture; never modified (weights go through ``functional_call``).
        inputs: All training examples (shared by every client).
        labels: Their labels.
        compressors: The trial's compressors, in stage order.
        learning_rate: SGD step size.
        proximal_mu: FedProx coefficient of ``mu / 2 * ||w - w_start||^2``.
        round: Index of the round being trained.
        max_grad_norm: Each step's gradient norm is clipped to this (none: unclipped).
    """

    model: nn.Module
    inputs: torch.Tensor
    labels: torch.Tensor
    compressors: tuple[Compressor, ...]
    learning_rate: float
    proximal_mu: float = 0.0
    round: int = 0
    max_grad_norm: float | None = None

    def trainable(self, weights: Weights) -> list[str]:
        """Names of the trained tensors, in ``weights`` order.

        Read every round: compressors may restructure the model between
        rounds (structured pruning, low-rank factorisation).
        """
        names = {name for name, _ in self.model.named_parameters()}
        return [name for name in weights if name in names]


@dataclass(frozen=True)
class ClientJob:
    """One client to train this round.

    Attributes:
        client: The client's id.
        indices: Its training-example indices.
        states: Per compressor, its state for this client (empty: none kept).
    """

    client: int
    indices: np.ndarray
    states: tuple[Any, ...] = ()
