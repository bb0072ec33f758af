"""Local training and evaluation on one shared model object."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from fedsearch._errors import ConfigError, DivergenceError
from fedsearch.components import Batch, Compressor, Weights, can_vectorize
from fedsearch.federated._functional import (
    ClientJob,
    LocalSGD,
    clip_gradients,
    model_weights,
    proximal_term,
    step_contexts,
    transformed,
)
from fedsearch.federated._parallel import parallel_state, train_parallel
from fedsearch.federated._vectorized import train_vectorized

EVAL_BATCH_SIZE = 2048


Execution = Literal["auto", "sequential", "vectorized", "parallel"]
"""How a round's clients are trained: chosen by rule, one after another, all at once, or in
worker processes."""


VECTORIZE_MAX_STACKED_BYTES = 2 * 1024 * 1024
"""Largest float32 stack of a round's client weights that ``auto`` vectorizes."""


_BATCH_NORMS = nn.modules.batchnorm._NormBase
_NOT_VECTORIZED = (nn.modules.conv._ConvNd, _BATCH_NORMS)
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
    and fall back to a slow per-client loop. So does a compressor that cannot
    be vectorized (``vectorizable = False``, or per-client state), and so do
    batch norms: ``vmap`` cannot update their running statistics in place.

    Raises:
        ConfigError: ``vectorized`` was requested with such a compressor, or for
            a model with batch norms.
    """
    refused = [compressor.name for compressor in compressors if not can_vectorize(compressor)]
    if requested == "vectorized" and refused:
        raise ConfigError(
            f"compressor {', '.join(map(repr, refused))} cannot be trained under "
            "torch.func.vmap (vectorizable = False or per-client state); set execution to "
            '"auto" or "sequential"',
            field="federation.execution",
        )
    if requested == "vectorized" and any(isinstance(m, _BATCH_NORMS) for m in model.modules()):
        raise ConfigError(
            "batch norm layers cannot train under torch.func.vmap (their running statistics "
            'update in place); set execution to "auto" or "sequential"',
            field="federation.execution",
        )
    if requested == "parallel":  # only here when the round cannot train in workers
        return "sequential"
    if requested != "auto":
        return requested
    if num_clients < 2 or refused or any(_changes_loss(c) for c in compressors):
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


@dataclass(frozen=True)
class TrainedClients:
    """What local training returned: per client (in job order) its weights and mean loss.

    Attributes:
        results: ``(new weights, mean training loss)`` per client.
        execution: The path that trained them (``sequential``, ``vectorized``).
    """

    results: list[tuple[Weights, float]]
    execution: str


class LocalTrainer:
    """Runs local SGD for clients on one shared model and one copy of the data.

    The one entry point is ``train_clients``: train these clients from these
    weights. Clients hold index arrays only; their examples are gathered from
    the shared tensors batch by batch. They are trained one after another
    (``sequential``) or together with ``torch.func.vmap`` over stacked client
    weights (``vectorized``); both give the same weights within float tolerance
    and draw the same shuffles from ``generator``. The trainer keeps no
    per-client state: each job carries its client's compressor states.

    Args:
        model: The model architecture; the trainer never changes its tensors
            (it trains a private copy, or passes weights to ``functional_call``).
        inputs: All training examples (shared by every client).
        labels: Their labels.
        compressors: Compressors of the trial, in stage order.
        local_epochs: Passes over the client's data per round.
        batch_size: Examples per step.
        learning_rate: SGD step size.
        max_grad_norm: Each local step's gradient norm is clipped to this (none: unclipped).
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
        max_grad_norm: float | None = None,
        execution: Execution = "auto",
        workers: int | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.labels = labels
        self.compressors = tuple(compressors)
        self.local_epochs = local_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_grad_norm = max_grad_norm
        self.generator = generator
        self.execution = execution
        self.workers = workers
        self.device = device
        self._work_model: nn.Module | None = None

    def train_clients(
        self,
        weights: Weights,
        jobs: Sequence[ClientJob],
        *,
        round_index: int = 0,
        proximal_mu: float = 0.0,
    ) -> TrainedClients:
        """Train each client from ``weights``; return its new weights and mean loss, in order.

        Args:
            weights: The weights every client starts from.
            jobs: The clients, with their data and compressor states.
            round_index: The round being trained (the compressors' step context).
            proximal_mu: FedProx coefficient of ``mu / 2 * ||w - weights||^2``.
        """
        sgd = LocalSGD(
            self.model,
            self.inputs,
            self.labels,
            self.compressors,
            self.learning_rate,
            proximal_mu,
            round_index,
            self.max_grad_norm,
        )
        for compressor in self.compressors:
            compressor.on_local_training_start(weights, round_index)
        orders = [self._batches(job.indices) for job in jobs]
        # Workers keep nothing between rounds: clients with compressor state train in-process.
        stateless = all(state is None for job in jobs for state in job.states)
        pickled = parallel_state(self, orders) if stateless else None
        if pickled is not None:
            execution = "parallel"
        else:
            execution = choose_execution(self.model, self.execution, len(orders), self.compressors)
        self.model.train()
        with intra_op_threads(self.model):
            if pickled is not None:
                clients = [job.client for job in jobs]
                results = train_parallel(self, pickled, weights, orders, clients, sgd)
            elif execution == "vectorized":
                results = train_vectorized(sgd, weights, orders)
            else:
                results = [
                    self._train_one(sgd, weights, batches, job)
                    for batches, job in zip(orders, jobs, strict=True)
                ]
        for _, mean_loss in results:
            if not math.isfinite(mean_loss):
                raise DivergenceError(
                    f"training loss is {mean_loss} (learning rate {self.learning_rate}); "
                    "lower the learning rate or narrow the search ranges"
                )
        return TrainedClients(results, execution)

    def _batches(self, indices: np.ndarray) -> list[torch.Tensor]:
        positions = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        batches: list[torch.Tensor] = []
        for _ in range(self.local_epochs):
            order = positions[torch.randperm(len(positions), generator=self.generator)]
            batches += order.split(self.batch_size)
        return batches

    def _train_one(
        self, sgd: LocalSGD, weights: Weights, batches: list[torch.Tensor], job: ClientJob
    ) -> tuple[Weights, float]:
        names = sgd.trainable(weights)
        steps = step_contexts(
            self.compressors, sgd.round, client=job.client, training=True, states=job.states
        )
        if self.compressors:
            local = {
                name: tensor.detach().clone().requires_grad_(name in names)
                for name, tensor in weights.items()
            }
            trainable = [local[name] for name in names]
            forward = lambda x: functional_call(  # noqa: E731
                self.model, transformed(local, self.compressors, steps), (x,)
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
            for compressor, step in zip(self.compressors, steps, strict=True):
                loss = compressor.training_loss(loss, logits, batch, step)
            mu = sgd.proximal_mu
            objective = loss + proximal_term(trainable, anchors, mu) if mu else loss
            gradients = clip_gradients(torch.autograd.grad(objective, trainable), sgd.max_grad_norm)
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
