"""Pieces the benchmarks share: clients dealt from a dataset, and a plain FedAvg run.

The benchmarks reproduce papers that report test accuracy, so the test split
serves as the evaluation split here (a search never does this: it evaluates on
a validation split carved out of the training data).
"""

from __future__ import annotations

import numpy as np

from fedsearch import get_registry
from fedsearch.components import DatasetSplits, Partitioner
from fedsearch.config import FederationConfig
from fedsearch.federated import FederatedData, FederatedRun


def clients_on_test_split(
    splits: DatasetSplits, partitioner: Partitioner, num_clients: int, seed: int
) -> FederatedData:
    """Deal the training part to ``num_clients``; evaluate on the test part."""
    clients = partitioner.partition(
        splits.train_labels.numpy(), num_clients, np.random.default_rng(seed)
    )
    return FederatedData(
        train_inputs=splits.train_inputs,
        train_labels=splits.train_labels,
        val_inputs=splits.test_inputs,
        val_labels=splits.test_labels,
        test_inputs=splits.test_inputs,
        test_labels=splits.test_labels,
        client_indices=[np.asarray(indices, dtype=np.int64) for indices in clients],
        num_classes=splits.num_classes,
    )


def fedavg_run(data: FederatedData, federation: FederationConfig, seed: int = 0) -> FederatedRun:
    """FedAvg with float32 payloads both ways."""
    registry = get_registry()
    return FederatedRun(
        data=data,
        federation=federation,
        strategy=registry.create("strategy", "fedavg"),
        downlink_codec=registry.create("codec", "float32"),
        uplink_codec=registry.create("codec", "float32"),
        seed=seed,
    )
