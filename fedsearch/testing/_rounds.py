"""Tiny real federations for the conformance suites: a few clients, a few rounds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fedsearch.components import Codec, Compressor, Middleware, Strategy
from fedsearch.config import FederationConfig
from fedsearch.federated import FederatedData, FederatedRun, SimulationResult, run_federated
from fedsearch.host import get_registry


def tiny_data(
    inputs: torch.Tensor, labels: torch.Tensor, num_classes: int, num_clients: int
) -> FederatedData:
    """``inputs`` dealt round-robin to ``num_clients`` clients (and reused as validation)."""
    clients = [np.arange(client, len(labels), num_clients) for client in range(num_clients)]
    return FederatedData(
        train_inputs=inputs,
        train_labels=labels,
        val_inputs=inputs,
        val_labels=labels,
        test_inputs=inputs,
        test_labels=labels,
        client_indices=clients,
        num_classes=num_classes,
    )


def run_tiny_federation(
    model: nn.Module,
    data: FederatedData,
    *,
    rounds: int,
    execution: str = "auto",
    compressors: Sequence[Compressor] = (),
    middleware: Sequence[Middleware] = (),
    seed: int = 0,
    strategy: Strategy | None = None,
    uplink_codec: Codec | None = None,
    downlink_codec: Codec | None = None,
) -> SimulationResult:
    """Every client trains every round (fraction 1; FedAvg and float32 payloads unless given)."""
    registry = get_registry()
    if strategy is None:
        strategy = registry.create("strategy", "fedavg")  # type: ignore[assignment]
    assert isinstance(strategy, Strategy)
    federation = FederationConfig(
        num_clients=len(data.client_indices),
        rounds=rounds,
        fraction=1.0,
        batch_size=4,
        learning_rate=0.05,
        execution=execution,  # type: ignore[arg-type]
    )
    run = FederatedRun(
        data=data,
        federation=federation,
        strategy=strategy,
        downlink_codec=downlink_codec or registry.create("codec", "float32"),  # type: ignore[arg-type]
        uplink_codec=uplink_codec or registry.create("codec", "float32"),  # type: ignore[arg-type]
        seed=seed,
        middleware=tuple(middleware),
    )
    downloads = {}
    for compressor in compressors:
        downloads |= compressor.one_time_downloads()
    return run_federated(model, run, compressors=compressors, one_time_downloads=downloads)
