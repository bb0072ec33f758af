"""The Flower side of benchmarks/sim_throughput.py (imported only when flwr is installed).

Uses Flower's current Message API: a ``ClientApp`` whose ``train`` handler runs
the same local SGD as the hand loop, a ``ServerApp`` running
``flwr.serverapp.strategy.FedAvg``, both driven by
``flwr.simulation.run_simulation`` (the Ray backend, one CPU per client).
The server's evaluation hook, which ``FedAvg.start`` calls before the first
round and after every round, ticks the benchmark's ``RoundClock``: what comes
before the first tick is Flower's start-up.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation
from torch import nn


def flower_fedavg(
    *,
    workload: Any,
    data: Any,
    model: nn.Module,
    local_sgd: Callable[..., None],
    clients_per_round: int,
    clock: Any,
) -> dict[str, torch.Tensor]:
    """Run the workload in Flower's simulation; return the final global state dict."""
    # Ray workers unpickle the apps: send this module's code along by value.
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    partitions = [
        (data.train_inputs[torch.from_numpy(i)], data.train_labels[torch.from_numpy(i)])
        for i in data.client_indices
    ]
    client_app = ClientApp()

    @client_app.train()
    def train(message: Message, context: Context) -> Message:
        inputs, targets = partitions[int(context.node_config["partition-id"])]
        model.load_state_dict(message.content["arrays"].to_torch_state_dict())
        local_sgd(model, inputs, targets, workload)
        content = RecordDict(
            {
                "arrays": ArrayRecord(model.state_dict()),
                "metrics": MetricRecord({"num-examples": len(targets)}),
            }
        )
        return Message(content=content, reply_to=message)

    server_app = ServerApp()
    final: dict[str, dict[str, torch.Tensor]] = {}

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_train=workload.fraction,
            fraction_evaluate=0.0,
            min_train_nodes=clients_per_round,
            min_evaluate_nodes=0,
            min_available_nodes=workload.num_clients,
        )

        def tick(server_round: int, arrays: ArrayRecord) -> None:
            clock.tick()  # before round 1, then after every round

        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(model.state_dict()),
            num_rounds=workload.rounds,
            evaluate_fn=tick,
        )
        final["state"] = result.arrays.to_torch_state_dict()

    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=workload.num_clients,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    return final["state"]
