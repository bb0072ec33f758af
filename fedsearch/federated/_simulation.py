"""The federated round loop shared by teacher training and every trial."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from fedsearch.components import (
    Codec,
    Compressor,
    Middleware,
    SecureAggregator,
    ServerRound,
    Strategy,
    Traffic,
    Weights,
)
from fedsearch.config import FederationConfig
from fedsearch.federated._channel import SimulatedChannel
from fedsearch.federated._client_data import client_training_data
from fedsearch.federated._client_runtime import ClientRuntime
from fedsearch.federated._data import FederatedData
from fedsearch.federated._downlink import Downlink
from fedsearch.federated._functional import model_weights, step_contexts, transformed
from fedsearch.federated._grid import SimulatedGrid, run_round
from fedsearch.federated._middleware_chain import MiddlewareChain
from fedsearch.federated._parallel import close_client_pool
from fedsearch.federated._training import LocalTrainer, accuracy


@dataclass(frozen=True)
class RoundRecord:
    """What one round did; the byte counts are this round's, as measured by the channel."""

    round: int
    val_accuracy: float | None
    train_loss: float
    downlink_bytes: int
    uplink_bytes: int
    one_time_bytes: int = 0
    execution: str = ""


@dataclass(frozen=True)
class SimulationResult:
    """Final global weights, per-round history and traffic of a federated run."""

    weights: Weights
    history: list[RoundRecord] = field(default_factory=list)
    downlink_bytes: int = 0
    uplink_bytes: int = 0
    one_time_bytes: int = 0
    one_time_by_name: dict[str, int] = field(default_factory=dict)
    """``one_time_bytes`` per named one-time download (the teacher's under ``"teacher"``)."""
    protocol_by_name: dict[str, int] = field(default_factory=dict)
    """Per-round bytes by protocol message name (secure aggregation's stages)."""
    dropped_clients: int = 0
    """Client dropouts from secure aggregation, summed over rounds."""
    plain_uplink_bytes: int = 0
    """Under secure aggregation: the survivors' updates as plain float32, summed over rounds."""

    @property
    def comm_bytes(self) -> int:
        """Every byte that crossed the channel."""
        return self.downlink_bytes + self.uplink_bytes + self.one_time_bytes


RoundCallback = Callable[[RoundRecord], None]


@dataclass(frozen=True)
class FederatedRun:
    """Everything a federated run needs besides the model.

    Attributes:
        data: The shared data and client partition.
        federation: Rounds, sampling fraction, local training settings.
        strategy: Server aggregation.
        downlink_codec: Encodes server-to-client payloads.
        uplink_codec: Encodes client-to-server payloads.
        seed: Seeds client sampling, local shuffling and middleware noise.
        device: Where clients train (a GPU: in worker processes spread over the GPUs).
        middleware: Payload transforms around the channel, in order.
        secure_aggregator: The uplink's secure aggregation protocol, if any.
    """

    data: FederatedData
    federation: FederationConfig
    strategy: Strategy
    downlink_codec: Codec
    uplink_codec: Codec
    seed: int
    device: torch.device | None = None
    middleware: tuple[Middleware, ...] = ()
    secure_aggregator: SecureAggregator | None = None


def run_federated(
    model: nn.Module,
    run: FederatedRun,
    *,
    compressors: Sequence[Compressor] = (),
    one_time_downloads: Mapping[str, Weights] | None = None,
    rounds: int | None = None,
    learning_rate: float | None = None,
    on_round: RoundCallback | None = None,
    on_weights: Callable[[Weights], None] | None = None,
) -> SimulationResult:
    """Train ``model`` federatedly and return the final global weights.

    Args:
        model: The freshly initialised global model.
        run: Data, federation settings, strategy, codecs, seed.
        compressors: Compressors of the trial, in stage order.
        one_time_downloads: Payloads each participating client downloads once.
        rounds: Overrides ``run.federation.rounds``.
        learning_rate: Overrides ``run.federation.learning_rate``.
        on_round: Called after every round (progress, early abort).
        on_weights: Called with the global weights after every round, before ``on_round``.
    """
    federation = run.federation
    num_rounds = rounds or federation.rounds
    generator = torch.Generator().manual_seed(run.seed)
    data = run.data
    inputs, labels = client_training_data(
        data.train_inputs, data.train_labels, data.client_indices, run.middleware, run.seed
    )
    trainer = LocalTrainer(
        model,
        inputs,
        labels,
        compressors,
        local_epochs=federation.local_epochs,
        batch_size=federation.batch_size,
        learning_rate=learning_rate or federation.learning_rate,
        max_grad_norm=federation.max_grad_norm,
        generator=generator,
        execution=federation.execution,
        workers=federation.client_workers,
        device=run.device,
    )
    weights = model_weights(model)
    grid = SimulatedGrid(
        SimulatedChannel(downlink_codec=run.downlink_codec, uplink_codec=run.uplink_codec),
        ClientRuntime(trainer, run.data.client_indices),
        Downlink(
            federation.downlink,
            weights,
            initial_model=federation.initial_model,
            one_time_downloads=one_time_downloads,
        ),
        MiddlewareChain(run.middleware, run.seed, len(data.client_indices)),
        run.secure_aggregator,
    )
    rng = np.random.default_rng(run.seed)
    history = []
    total = Traffic()
    dropped = plain_uplink = 0
    try:
        for index in range(num_rounds):
            for compressor in compressors:
                compressor.on_round_start(weights, index)
            server_round = ServerRound(index, num_rounds, federation.fraction, rng)
            result = run_round(run.strategy, grid, weights, server_round)
            weights, metrics = result.weights, result.metrics
            total += metrics.traffic
            dropped += len(metrics.dropped)
            plain_uplink += metrics.plain_bytes
            evaluate = (index + 1) % federation.eval_every == 0 or index + 1 == num_rounds
            record = RoundRecord(
                round=index + 1,
                val_accuracy=_val_accuracy(model, run.data, weights, compressors, index)
                if evaluate
                else None,
                train_loss=metrics.train_loss,
                downlink_bytes=metrics.traffic.downlink,
                uplink_bytes=metrics.traffic.uplink,
                one_time_bytes=metrics.traffic.one_time,
                execution=metrics.execution,
            )
            history.append(record)
            if on_weights is not None:
                on_weights(weights)
            if on_round is not None:
                on_round(record)
    finally:
        grid.close()  # every client's state goes with the run
        close_client_pool(trainer)
    return SimulationResult(
        weights=weights,
        history=history,
        downlink_bytes=total.downlink,
        uplink_bytes=total.uplink,
        one_time_bytes=total.one_time,
        one_time_by_name=dict(total.one_time_by_name),
        protocol_by_name=dict(total.protocol_by_name),
        dropped_clients=dropped,
        plain_uplink_bytes=plain_uplink,
    )


def _val_accuracy(
    model: nn.Module,
    data: FederatedData,
    weights: Weights,
    compressors: Sequence[Compressor],
    round_index: int,
) -> float:
    steps = step_contexts(compressors, round_index)
    with torch.no_grad():
        return accuracy(
            model, data.val_inputs, data.val_labels, transformed(weights, compressors, steps)
        )
