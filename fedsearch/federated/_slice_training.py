"""Local SGD of one client on its tier's sub-model (sequential; any execution setting)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from fedsearch.components import Weights
from fedsearch.federated._functional import clip_gradients
from fedsearch.federated._slicing import SlicePlan


@dataclass(frozen=True)
class SliceTraining:
    """The shared training data and local SGD settings."""

    inputs: torch.Tensor
    labels: torch.Tensor
    local_epochs: int
    batch_size: int
    learning_rate: float
    max_grad_norm: float | None = None

    def batch_sizes(self, num_examples: int) -> list[int]:
        """Sizes of the planned local batches (every epoch, in order)."""
        sizes = [
            min(self.batch_size, num_examples - start)
            for start in range(0, num_examples, self.batch_size)
        ]
        return sizes * self.local_epochs


@dataclass(frozen=True)
class Narrower:
    """A narrower prefix of the client's own sub-model (FjORD's ordered dropout)."""

    model: nn.Module
    plan: SlicePlan | None
    """Cuts it out of the client's sub-model (None: the sub-model itself)."""


def train_slice(
    weights: Weights,
    indices: np.ndarray,
    training: SliceTraining,
    widths: Sequence[Narrower],
    generator: torch.Generator,
    max_steps: int,
) -> tuple[Weights, float, int]:
    """Train the slice ``weights`` for at most ``max_steps`` batches.

    Each step trains one of ``widths`` (drawn uniformly from ``generator`` when
    there are several: ordered dropout), so a narrower prefix updates only its
    own coordinates.

    Returns:
        The trained weights, the mean training loss and the number of steps.
    """
    params = {
        name: tensor.detach().clone().requires_grad_(True) for name, tensor in weights.items()
    }
    losses: list[float] = []
    steps = 0
    for _ in range(training.local_epochs):
        order = torch.randperm(len(indices), generator=generator)
        for start in range(0, len(indices), training.batch_size):
            if steps >= max_steps:
                break
            chosen = torch.as_tensor(indices[order[start : start + training.batch_size].numpy()])
            pick = (
                0
                if len(widths) == 1
                else int(torch.randint(len(widths), (1,), generator=generator))
            )
            width = widths[pick]
            used = params if width.plan is None else width.plan.take(params)
            logits = functional_call(width.model, used, (training.inputs[chosen],))
            loss = nn.functional.cross_entropy(logits, training.labels[chosen])
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            used_grads = clip_gradients([g for g in grads if g is not None], training.max_grad_norm)
            clipped = iter(used_grads)
            grads = tuple(None if g is None else next(clipped) for g in grads)
            with torch.no_grad():
                for tensor, grad in zip(params.values(), grads, strict=True):
                    if grad is not None:
                        tensor.sub_(training.learning_rate * grad)
            losses.append(float(loss.detach()))
            steps += 1
    trained = {name: tensor.detach() for name, tensor in params.items()}
    return trained, float(np.mean(losses)) if losses else 0.0, steps
