"""The federated-learning simulation: data, local training, channel, rounds."""

from __future__ import annotations

from fedsearch.federated._channel import SimulatedChannel, TrafficCounter
from fedsearch.federated._data import FederatedData, prepare_federated_data
from fedsearch.federated._device import device_note, resolve_device
from fedsearch.federated._functional import model_weights, proximal_term, transformed
from fedsearch.federated._simulation import (
    FederatedRun,
    RoundCallback,
    RoundRecord,
    SimulationResult,
    run_federated,
)
from fedsearch.federated._training import (
    Execution,
    LocalTrainer,
    accuracy,
    choose_execution,
    intra_op_threads,
    predict_logits,
)

__all__ = [
    "Execution",
    "FederatedData",
    "FederatedRun",
    "LocalTrainer",
    "RoundCallback",
    "RoundRecord",
    "SimulatedChannel",
    "SimulationResult",
    "TrafficCounter",
    "accuracy",
    "choose_execution",
    "device_note",
    "intra_op_threads",
    "model_weights",
    "predict_logits",
    "prepare_federated_data",
    "proximal_term",
    "resolve_device",
    "run_federated",
    "transformed",
]
