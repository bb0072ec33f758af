"""The federated-learning simulation: data, local training, channel, rounds."""

from __future__ import annotations

from fedsearch.federated._channel import SimulatedChannel, TrafficCounter
from fedsearch.federated._data import FederatedData, prepare_federated_data
from fedsearch.federated._simulation import (
    FederatedRun,
    RoundCallback,
    RoundRecord,
    SimulationResult,
    run_federated,
)
from fedsearch.federated._training import (
    LocalTrainer,
    accuracy,
    model_weights,
    predict_logits,
    transformed,
)

__all__ = [
    "FederatedData",
    "FederatedRun",
    "LocalTrainer",
    "RoundCallback",
    "RoundRecord",
    "SimulatedChannel",
    "SimulationResult",
    "TrafficCounter",
    "accuracy",
    "model_weights",
    "predict_logits",
    "prepare_federated_data",
    "run_federated",
    "transformed",
]
