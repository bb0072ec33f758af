"""Clients apply the pruning mask they can derive from what they received, nothing else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedsearch import CompressionContext
from fedsearch.federated import (
    ClientRuntime,
    Downlink,
    LocalTrainer,
    MiddlewareChain,
    SimulatedChannel,
    SimulatedGrid,
)
from fedsearch.testing._rounds import tiny_data


def grid_and_pruned_weights(registry, downlink, codec):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    initial = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    pruner = registry.create("compressor", "magnitude", {"sparsity": 0.5, "start_fraction": 0.0})
    pruner.setup(CompressionContext(model, num_rounds=2, teacher=None))
    weights = {name: tensor.clone() for name, tensor in initial.items()}
    pruner.on_round_start(weights, 0)
    generator = torch.Generator().manual_seed(0)
    inputs, labels = torch.randn(24, 8, generator=generator), torch.randint(0, 3, (24,))
    data = tiny_data(inputs, labels, 3, 4)
    trainer = LocalTrainer(
        model, inputs, labels, [pruner], local_epochs=2, batch_size=3, learning_rate=0.1,
        generator=torch.Generator().manual_seed(0), execution="sequential",
    )  # fmt: skip
    grid = SimulatedGrid(
        SimulatedChannel(
            downlink_codec=registry.create("codec", codec),
            uplink_codec=registry.create("codec", "float32"),
        ),
        ClientRuntime(trainer, data.client_indices),
        Downlink(downlink, initial, initial_model="seeded"),
        MiddlewareChain((), seed=0),
    )
    return grid, pruner, weights


def test_over_a_lossless_model_downlink_clients_keep_exactly_the_servers_mask(registry):
    grid, pruner, weights = grid_and_pruned_weights(registry, "model", "float32")
    updates = grid.fit([0, 1], weights, {}, 0).updates
    for update in updates:
        for name, mask in pruner.masks.items():
            assert torch.equal(update.delta[name][mask == 0], torch.zeros(int((mask == 0).sum())))
            assert (update.delta[name][mask == 1] != 0).any()


@pytest.mark.parametrize("codec", ["qsgd", "float16"])
def test_over_a_lossy_delta_downlink_clients_use_only_what_they_received(registry, codec):
    grid, pruner, weights = grid_and_pruned_weights(registry, "delta", codec)
    replies = grid.fit([0, 1], weights, {}, 0)
    received = grid.downlink.references()
    trained_server_pruned = 0
    for update in replies.updates:
        for name, mask in pruner.masks.items():
            holds = received[update.client_id][name]
            # where the client received an exact zero it kept it; the rest it trained
            assert torch.equal(update.delta[name][holds == 0], torch.zeros(int((holds == 0).sum())))
            trained_server_pruned += int(
                (update.delta[name][(mask == 0) & (holds != 0)] != 0).sum()
            )
    # the lossy delta did not carry every zero, and nothing else told the clients the mask
    assert trained_server_pruned > 0
    assert replies.metrics.traffic.one_time == 0
