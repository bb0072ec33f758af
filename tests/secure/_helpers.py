"""A channel that keeps every protocol message it delivered, and the quickstart workload."""

from __future__ import annotations

import torch
from fedsearch_builtins.codecs import Float32Codec

from fedsearch import get_registry
from fedsearch.config import FederationConfig
from fedsearch.federated import (
    FederatedData,
    FederatedRun,
    SimulatedChannel,
    prepare_federated_data,
)


class RecordingChannel(SimulatedChannel):
    """A ``SimulatedChannel`` keeping ``(direction, client, name, payload)`` of each message."""

    def __init__(self) -> None:
        super().__init__(downlink_codec=Float32Codec(), uplink_codec=Float32Codec())
        self.messages: list[tuple[str, int | None, str, bytes]] = []

    def transfer_bytes(self, payload, *, direction, client, name):
        self.messages.append((direction, client, name, bytes(payload)))
        return super().transfer_bytes(payload, direction=direction, client=client, name=name)


QUICKSTART_FEDERATION = FederationConfig(
    num_clients=10, rounds=20, fraction=0.5, local_epochs=2, batch_size=16, learning_rate=0.3
)
"""``studies/quickstart.toml``'s federation."""


def quickstart_data() -> FederatedData:
    """Digits, 15% validation, 10 IID clients, seed 0 (the quickstart's)."""
    registry = get_registry()
    return prepare_federated_data(
        registry.create("dataset", "digits", {}).load(),
        val_fraction=0.15,
        partitioner=registry.create("partitioner", "iid", {}),
        num_clients=10,
        seed=0,
    )


def quickstart_run(data: FederatedData, secure=None, **federation) -> FederatedRun:
    """The quickstart's federated run, with ``secure`` as its secure aggregator."""
    registry = get_registry()
    return FederatedRun(
        data=data,
        federation=QUICKSTART_FEDERATION.model_copy(update=federation),
        strategy=registry.create("strategy", "fedavg", {}),
        downlink_codec=Float32Codec(),
        uplink_codec=Float32Codec(),
        seed=0,
        secure_aggregator=secure,
    )


def quickstart_model(data: FederatedData, widths=(64,)) -> torch.nn.Module:
    """A fresh MLP student, seeded."""
    torch.manual_seed(0)
    architecture = get_registry().create("architecture", "mlp", {"widths": list(widths)})
    return architecture.build(data.input_shape, data.num_classes)
