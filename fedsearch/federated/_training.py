"""Local training and evaluation on one shared model object."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from fedsearch.components import Batch, Compressor, Weights

EVAL_BATCH_SIZE = 2048


def model_weights(model: nn.Module) -> Weights:
    """Detached copies of the model's parameters and buffers (its weights)."""
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def transformed(weights: Weights, compressors: Sequence[Compressor]) -> Weights:
    """The weights the forward pass sees after every compressor's transform."""
    for compressor in compressors:
        weights = compressor.transform_parameters(weights)
    return weights


class LocalTrainer:
    """Runs local SGD for any client on one shared model and one copy of the data.

    Args:
        model: The model architecture; its own tensors are never trained, the
            trainer passes weights explicitly with ``torch.func.functional_call``.
        inputs: All training examples (shared by every client).
        labels: Their labels.
        compressors: Compressors of the trial, in stage order.
        local_epochs: Passes over the client's data per round.
        batch_size: Examples per step.
        learning_rate: SGD step size.
        generator: Source of shuffling randomness.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        compressors: Sequence[Compressor],
        *,
        local_epochs: int,
        batch_size: int,
        learning_rate: float,
        generator: torch.Generator,
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.labels = labels
        self.compressors = list(compressors)
        self.local_epochs = local_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.generator = generator

    def train(self, weights: Weights, indices: np.ndarray) -> tuple[Weights, float]:
        """Train from ``weights`` on the examples at ``indices``.

        Returns:
            The new weights and the mean training loss.
        """
        # Compressors may restructure the model between rounds (structured
        # pruning, low-rank factorisation): read its parameter names every time.
        trainable_names = {name for name, _ in self.model.named_parameters()}
        local = {
            name: tensor.detach().clone().requires_grad_(name in trainable_names)
            for name, tensor in weights.items()
        }
        trainable = [local[name] for name in local if name in trainable_names]
        client_positions = torch.from_numpy(indices)
        self.model.train()
        losses = []
        for _ in range(self.local_epochs):
            order = client_positions[torch.randperm(len(indices), generator=self.generator)]
            for batch_positions in order.split(self.batch_size):
                batch = Batch(
                    self.inputs[batch_positions], self.labels[batch_positions], batch_positions
                )
                loss = self._loss(local, batch)
                gradients = torch.autograd.grad(loss, trainable)
                with torch.no_grad():
                    torch._foreach_add_(trainable, gradients, alpha=-self.learning_rate)
                losses.append(loss.item())
        return {name: tensor.detach() for name, tensor in local.items()}, float(np.mean(losses))

    def _loss(self, weights: Weights, batch: Batch) -> torch.Tensor:
        logits = functional_call(
            self.model, transformed(weights, self.compressors), (batch.inputs,)
        )
        loss = F.cross_entropy(logits, batch.targets)
        for compressor in self.compressors:
            loss = compressor.training_loss(loss, logits, batch)
        return loss


@torch.no_grad()
def accuracy(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    weights: Weights | None = None,
) -> float:
    """Top-1 accuracy of ``model`` (with ``weights`` if given) on the examples."""
    model.eval()
    correct = 0
    for start in range(0, len(labels), EVAL_BATCH_SIZE):
        batch = inputs[start : start + EVAL_BATCH_SIZE]
        logits = model(batch) if weights is None else functional_call(model, weights, (batch,))
        correct += int((logits.argmax(dim=1) == labels[start : start + EVAL_BATCH_SIZE]).sum())
    return correct / len(labels)


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Logits of ``model`` for every example, in evaluation mode."""
    model.eval()
    return torch.cat(
        [
            model(inputs[start : start + EVAL_BATCH_SIZE])
            for start in range(0, len(inputs), EVAL_BATCH_SIZE)
        ]
    )
