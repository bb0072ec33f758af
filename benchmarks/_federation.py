"""Pieces the benchmarks share: clients dealt from a dataset, a plain FedAvg run, seed summaries.

Every choice a benchmark makes (a learning rate, a recipe, a configuration, a
stopping round) is made on a validation split carved from the training data
(``prepare_federated_data``); the test split is only reported, for the chosen
configuration. ``clients_on_test_split`` is for the throughput benchmark,
which chooses nothing and only times a fixed workload.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedsearch import ComponentRegistry, get_registry
from fedsearch.components import DatasetSplits, Partitioner, Weights
from fedsearch.config import FederationConfig
from fedsearch.federated import FederatedData, FederatedRun

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
"""The checkout's sibling ``shared/data`` (README): the datasets unless FEDSEARCH_DATA_DIR says."""


def default_data_dir() -> str:
    """FEDSEARCH_DATA_DIR, set to ``SHARED_DATA`` when unset (the dataset plugins read it)."""
    return os.environ.setdefault("FEDSEARCH_DATA_DIR", str(SHARED_DATA))


VAL_FRACTION = 0.05
"""Share of the training examples carved out for validation (stratified by label)."""


def clients_on_test_split(
    splits: DatasetSplits, partitioner: Partitioner, num_clients: int, seed: int
) -> FederatedData:
    """Deal the whole training part to ``num_clients``; evaluate on the test part."""
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


def fedavg_run(
    data: FederatedData,
    federation: FederationConfig,
    seed: int = 0,
    registry: ComponentRegistry | None = None,
) -> FederatedRun:
    """FedAvg with float32 payloads both ways (plugins discovered again unless ``registry``)."""
    registry = registry or get_registry()
    return FederatedRun(
        data=data,
        federation=federation,
        strategy=registry.create("strategy", "fedavg"),
        downlink_codec=registry.create("codec", "float32"),
        uplink_codec=registry.create("codec", "float32"),
        seed=seed,
    )


class RoundTap:
    """Wraps a strategy to keep each round's new global weights and the clients it selected.

    ``run_federated`` hands its round callback only the validation accuracy; a
    benchmark that reports test accuracy for its chosen configuration reads the
    weights here. Every call is the wrapped strategy's own, so nothing it
    computes changes.
    """

    def __init__(self, strategy: Any) -> None:
        self.strategy = strategy
        self.weights: Weights | None = None
        self.participants: set[int] = set()

    def select_clients(self, *args: Any, **kwargs: Any) -> list[int]:
        """The strategy's choice, recorded."""
        chosen = self.strategy.select_clients(*args, **kwargs)
        self.participants.update(int(client) for client in chosen)
        return chosen

    def aggregate(self, *args: Any, **kwargs: Any) -> Weights:
        """The strategy's new global weights, recorded."""
        self.weights = self.strategy.aggregate(*args, **kwargs)
        return self.weights

    def run_round(self, *args: Any, **kwargs: Any) -> Any:
        """The strategy class's round, with this wrapper as ``self`` (so the two above record)."""
        return type(self.strategy).run_round(self, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.strategy, name)


def tapped(run: FederatedRun) -> tuple[FederatedRun, RoundTap]:
    """``run`` with its strategy wrapped in a ``RoundTap``, and the tap."""
    tap = RoundTap(run.strategy)
    return dataclasses.replace(run, strategy=tap), tap


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value), min, max and the values themselves."""
    values = [float(value) for value in values]
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def mean_std(values: Sequence[float], digits: int = 2) -> str:
    """``mean ± std (n = k)`` for a RESULTS.md cell."""
    summary = spread(values)
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f} (n = {len(values)})"
