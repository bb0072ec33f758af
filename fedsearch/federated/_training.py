"""Local training and evaluation on one shared model object."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from fedsearch._errors import DivergenceError
from fedsearch.components import Batch, Compressor, Weights
from fedsearch.federated._functional import model_weights, proximal_term, transformed
from fedsearch.federated._parallel import parallel_state, train_parallel
from fedsearch.federated._vectorized import train_vectorized

EVAL_BATCH_SIZE = 2048


Execution = Literal["auto", "sequential", "vectorized", "parallel"]
"""How a round's clients are trained: chosen by rule, one after another, all at once, or in
worker processes."""


VECTORIZE_MAX_STACKED_BYTES = 2 * 1024 * 1024
"""Largest float32 stack of a round's client weights that ``auto`` vectorizes."""


_NOT_VECTORIZED = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase)
"""Modules that keep ``auto`` sequential: convolutions (slower batched) and batch norms."""


def choose_execution(
    model: nn.Module,
    requested: Execution,
    num_clients: int,
    compressors: Sequence[Compressor] = (),
) -> str:
    """The execution path for a round of ``num_clients`` clients.

    ``auto`` trains the clients together with ``torch.func.vmap`` when there
    are at least two, the model has no convolution, and the stacked client
    weights fit in ``VECTORIZE_MAX_STACKED_BYTES`` (2 MiB, about an L2 cache);
    sequentially otherwise. The rule comes from measurements on CPU (see
    RESULTS.md): vectorizing pays for small MLPs, whose steps are dominated
    by per-step overhead, but not for MLPs like the 2NN (10 x 199k weights
    stream through memory every step while one client's weights stay cached)
    nor for CNNs (batched convolutions are slower than plain ones). It depends
    only on the model and the round, so a trial stays deterministic. A
    compressor with its own ``training_loss`` (distillation) also keeps
    ``auto`` sequential: losses such as ``kl_div`` have no vmap batching rule
    and fall back to a slow per-client loop. Batch norms keep ``auto``
    sequential too: ``vmap`` cannot update their running statistics in place.
    """
    if requested == "parallel":  # only here when the round cannot train in workers
        return "sequential"
    if requested != "auto":
        return requested
    if num_clients < 2 or any(_changes_loss(compressor) for compressor in compressors):
        return "sequential"
    if any(isinstance(module, _NOT_VECTORIZED) for module in model.modules()):
        return "sequential"
    stacked = 4 * num_clients * sum(p.numel() for p in model.parameters())
    return "vectorized" if stacked <= VECTORIZE_MAX_STACKED_BYTES else "sequential"


SINGLE_THREAD_MAX_PARAMETERS = 100_000
"""Models up to this size train with one intra-op thread (see ``intra_op_threads``)."""


@contextlib.contextmanager
def intra_op_threads(model: nn.Module) -> Iterator[None]:
    """Train small models on one intra-op thread, restoring the setting afterwards.

    The kernels of a small model's steps (a 32 x 64 by 64 x 128 matmul) are
    too short to split across cores: waking the thread pool costs more than it
    saves. Larger models keep torch's setting.
    """
    previous = torch.get_num_threads()
    small = sum(p.numel() for p in model.parameters()) <= SINGLE_THREAD_MAX_PARAMETERS
    if not small or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _changes_loss(compressor: Compressor) -> bool:
    return type(compressor).training_loss is not Compressor.training_loss


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
        execution: ``auto``, ``sequential``, ``vectorized`` or ``parallel``.
        workers: Worker processes of ``parallel`` (default: the usable cores).
        device: Where workers train (``parallel``); the CPU by default.
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
        workers: int | None = None,
        device: torch.device | None = None,
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
        self.workers = workers
        self.device = device
        self._work_model: nn.Module | None = None
        self.last_execution = ""

    @property
    def trainable(self) -> list[str]:
        """Names of the model's parameters, read every time: compressors may restructure
        the model between rounds (structured pruning, low-rank factorisation)."""
        return [name for name, _ in self.model.named_parameters()]

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
        state = parallel_state(self, orders)
        self.last_execution = (
            "parallel"
            if state
            else choose_execution(self.model, self.execution, len(orders), self.compressors)
        )
        self.model.train()
        with intra_op_threads(self.model):
            if state:
                results = train_parallel(self, state, weights, orders, proximal_mu)
            elif self.last_execution == "vectorized":
                results = train_vectorized(self, weights, orders, proximal_mu)
            else:
                results = [self._train_one(weights, batches, proximal_mu) for batches in orders]
        for _, mean_loss in results:
            if not math.isfinite(mean_loss):
                raise DivergenceError(
                    f"training loss is {mean_loss} (learning rate {self.learning_rate}); "
                    "lower the learning rate or narrow the search ranges"
                )
        return results

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
        names = self.trainable
        if self.compressors:
            local = {
                name: tensor.detach().clone().requires_grad_(name in names)
                for name, tensor in weights.items()
            }
            trainable = [local[name] for name in names]
            forward = lambda x: functional_call(  # noqa: E731
                self.model, transformed(local, self.compressors), (x,)
            )
        else:
            model = self._loaded_work_model(weights)
            trainable = list(model.parameters())
            forward = model
        anchors = [weights[name] for name in names]
        loss_sum = torch.zeros((), device=self.inputs.device)
        for positions in batches:
            batch = Batch(self.inputs[positions], self.labels[positions], positions)
            logits = forward(batch.inputs)
            loss = F.cross_entropy(logits, batch.targets)
            for compressor in self.compressors:
                loss = compressor.training_loss(loss, logits, batch)
            objective = (
                loss + proximal_term(trainable, anchors, proximal_mu) if proximal_mu else loss
            )
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
