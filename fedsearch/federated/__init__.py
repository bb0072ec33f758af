"""The federated-learning simulation: data, local training, channel, rounds."""

from __future__ import annotations

from fedsearch.federated._channel import SimulatedChannel
from fedsearch.federated._client_runtime import ClientFit, ClientRuntime
from fedsearch.federated._data import FederatedData, prepare_federated_data
from fedsearch.federated._device import device_note, resolve_device
from fedsearch.federated._downlink import Downlink
from fedsearch.federated._functional import (
    model_weights,
    proximal_term,
    step_contexts,
    transformed,
)
from fedsearch.federated._grid import RoundMetrics, RoundResult, SimulatedGrid, run_round
from fedsearch.federated._middleware_chain import MiddlewareChain
from fedsearch.federated._simulation import (
    FederatedRun,
    RoundCallback,
    RoundRecord,
    SimulationResult,
    run_federated,
)
from fedsearch.federated._tiered import (
    RoundEvents,
    TieredFederation,
    TieredResult,
    TieredRun,
    TierModel,
)
from fedsearch.federated._training import (
    ClientJob,
    Execution,
    LocalTrainer,
    accuracy,
    choose_execution,
    intra_op_threads,
    predict_logits,
)

__all__ = [
    "ClientFit",
    "ClientJob",
    "ClientRuntime",
    "Downlink",
    "Execution",
    "FederatedData",
    "FederatedRun",
    "LocalTrainer",
    "MiddlewareChain",
    "RoundCallback",
    "RoundEvents",
    "RoundMetrics",
    "RoundRecord",
    "RoundResult",
    "SimulatedChannel",
    "SimulatedGrid",
    "SimulationResult",
    "TierModel",
    "TieredFederation",
    "TieredResult",
    "TieredRun",
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
    "run_round",
    "step_contexts",
    "transformed",
]
