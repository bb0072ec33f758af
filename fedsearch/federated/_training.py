"""Local training and evaluation on one shared model object."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from fedsearch.components import Batch, Compressor, Weights
from fedsearch.federated._functional import model_weights, proximal_term, transformed
from fedsearch.federated._vectorized import train_vectorized

EVAL_BATCH_SIZE = 2048


Execution = Literal["auto", "sequential", "vectorized"]
"""How a round's clients are trained: chosen by rule, one after another, or all at once."""


def choose_execution(model: nn.Module, requested: Execution, num_clients: int) -> str:
    """The execution path for a round of ``num_clients`` clients.

    ``auto`` trains the clients together with ``torch.func.vmap`` when the
    model has no convolution and there are at least two clients, sequentially
    otherwise. The rule is measured (benchmarks/sim_throughput.py, RESULTS.md):
    vectorizing multiplies MLP throughput on CPU but does not help LeNet-style
    CNNs, whose batched (grouped) convolutions are slower than plain ones. It
    depends only on the model and the round, so a trial stays deterministic.
    """
    if requested != "auto":
        return requested
    if num_clients < 2:
        return "sequential"
    has_conv = any(isinstance(module, nn.modules.conv._ConvNd) for module in model.modules())
    return "sequential" if has_conv else "vectorized"


class LocalTrainer:
    """Runs local SGD for the clients of a round on one shared model and one copy of the data.

    Clients hold index arrays only; their examples are gathered from the shared
    tensors batch by batch. A round's clients are trained one after another
    (``sequential``) or together with ``torch.func.vmap`` over stacked client
    weights (``vectorized``); both give the same weights within float tolerance
    and draw the same shuffles from ``generator``.

    Args:
        model: The model architecture; the trainer never changes its tensors
            (it trains a private copy, or passes weights to ``functional_call``).
        inputs: All training examples (shared by every client).
        labels: Their labels.
        compressors: Compressors of the trial, in stage order.
        local_epochs: Passes over the client's data per round.
        batch_size: Examples per step.
        learning_rate: SGD step size.
        generator: Source of shuffling randomness.
        execution: ``auto``, ``sequential`` or ``vectorized``.
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
        execution: Execution = "auto",
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.labels = labels
        self.compressors = list(compressors)
        self.local_epochs = local_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.generator = generator
        self.execution = execution
        self.trainable = [name for name, _ in model.named_parameters()]
        self._work_model: nn.Module | None = None
        self.last_execution = ""

    def train(self, weights: Weights, indices: np.ndarray) -> tuple[Weights, float]:
        """Train one client from ``weights`` on the examples at ``indices``.

        Returns:
            The new weights and the mean training loss.
        """
        return self.train_clients(weights, [indices])[0]

    def train_clients(
        self, weights: Weights, client_indices: Sequence[np.ndarray], *, proximal_mu: float = 0.0
    ) -> list[tuple[Weights, float]]:
        """Train each client from ``weights``; return its new weights and mean loss, in order.

        Args:
            weights: The global weights every client starts from.
            client_indices: Per client, its training-example indices.
            proximal_mu: FedProx coefficient of ``mu / 2 * ||w - weights||^2``.
        """
        orders = [self._batches(indices) for indices in client_indices]
        self.last_execution = choose_execution(self.model, self.execution, len(orders))
        self.model.train()
        if self.last_execution == "vectorized":
            return train_vectorized(self, weights, orders, proximal_mu)
        return [self._train_one(weights, batches, proximal_mu) for batches in orders]

    def _batches(self, indices: np.ndarray) -> list[torch.Tensor]:
        positions = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        batches: list[torch.Tensor] = []
        for _ in range(self.local_epochs):
            order = positions[torch.randperm(len(positions), generator=self.generator)]
            batches += order.split(self.batch_size)
        return batches

    def _train_one(
        self, weights: Weights, batches: list[torch.Tensor], proximal_mu: float
    ) -> tuple[Weights, float]:
        if self.compressors:
            local = {
                name: tensor.detach().clone().requires_grad_(name in self.trainable)
                for name, tensor in weights.items()
            }
            trainable = [local[name] for name in self.trainable]
            forward = lambda x: functional_call(  # noqa: E731
                self.model, transformed(local, self.compressors), (x,)
            )
        else:
            model = self._loaded_work_model(weights)
            trainable = list(model.parameters())
            forward = model
        anchors = [weights[name] for name in self.trainable]
        loss_sum = torch.zeros(())
        for positions in batches:
            batch = Batch(self.inputs[positions], self.labels[positions], positions)
            logits = forward(batch.inputs)
            loss = F.cross_entropy(logits, batch.targets)
            for compressor in self.compressors:
                loss = compressor.training_loss(loss, logits, batch)
            objective = loss + proximal_term(trainable, anchors, proximal_mu)
            gradients = torch.autograd.grad(objective, trainable)
            with torch.no_grad():
                torch._foreach_add_(trainable, gradients, alpha=-self.learning_rate)
            loss_sum += loss.detach()
        if self.compressors:
            result = {name: tensor.detach() for name, tensor in local.items()}
        else:
            result = model_weights(model)
        return result, float(loss_sum) / max(len(batches), 1)

    def _loaded_work_model(self, weights: Weights) -> nn.Module:
        if self._work_model is None:
            self._work_model = copy.deepcopy(self.model)
        with torch.no_grad():
            for name, tensor in self._work_model.state_dict(keep_vars=True).items():
                tensor.copy_(weights[name])
        self._work_model.train()
        return self._work_model


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
