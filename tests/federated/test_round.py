"""The round: grid, client runtime, per-client state, downlink accounting."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from fedsearch import Compressor, ConfigError, StepContext, Traffic
from fedsearch.federated import ClientRuntime, LocalTrainer, choose_execution, run_federated
from fedsearch.testing._rounds import run_tiny_federation, tiny_data

NUM_PARAMETERS = 8 * 3 + 3


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 3))


def data(num_clients=6):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(36, 8, generator=generator)
    labels = torch.randint(0, 3, (36,), generator=generator)
    return tiny_data(inputs, labels, 3, num_clients)


class BatchRecorder(Compressor):
    """Keeps, per client, the example positions of every batch it trained on."""

    name = "batch_recorder"
    stage = "distill"

    def setup(self, context):
        pass

    def client_state(self, client):
        return {"client": client, "positions": []}

    def training_loss(self, loss, logits, batch, step: StepContext):
        assert step.state["client"] == step.client
        step.state["positions"].extend(batch.indices.tolist())
        return loss


def test_state_written_by_client_3_is_never_seen_by_client_5():
    tiny = data()
    recorder = BatchRecorder()
    trainer = LocalTrainer(
        mlp(),
        tiny.train_inputs,
        tiny.train_labels,
        [recorder],
        local_epochs=1,
        batch_size=2,
        learning_rate=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    runtime = ClientRuntime(trainer, tiny.client_indices)
    weights = {name: tensor.detach().clone() for name, tensor in mlp().state_dict().items()}
    for round_index in range(3):
        received = dict.fromkeys([3, 5], weights)
        runtime.fit(received, round_index=round_index)
    (three,), (five,) = runtime.states.of(3), runtime.states.of(5)
    assert three is not five
    assert sorted(set(three["positions"])) == tiny.client_indices[3].tolist()
    assert sorted(set(five["positions"])) == tiny.client_indices[5].tolist()
    assert len(five["positions"]) == 3 * len(tiny.client_indices[5])  # three rounds, its own
    assert runtime.states.clients == [3, 5]  # nothing for the clients that never trained
    runtime.close()
    assert runtime.states.clients == []


def test_a_stateful_compressor_trains_sequentially_and_refuses_vmap():
    recorder = BatchRecorder()
    assert choose_execution(mlp(), "auto", 6, [recorder]) == "sequential"
    with pytest.raises(ConfigError, match="vmap"):
        choose_execution(mlp(), "vectorized", 6, [recorder])


def test_every_round_returns_its_own_immutable_traffic_record():
    result = run_tiny_federation(mlp(), data(), rounds=2)
    first, second = result.history
    assert first.downlink_bytes == second.downlink_bytes > 0  # same payloads each round
    assert result.comm_bytes == sum(r.downlink_bytes + r.uplink_bytes for r in result.history)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Traffic(1, 2, 3).uplink = 0  # type: ignore[misc]


@pytest.mark.parametrize("initial_model", ["download", "seeded"])
def test_delta_downlink_charges_each_clients_first_model_unless_seeded(registry, initial_model):
    from fedsearch.config import FederationConfig
    from fedsearch.federated import FederatedRun

    def run(downlink):
        federation = FederationConfig(
            num_clients=6,
            fraction=1.0,
            rounds=2,
            batch_size=4,
            downlink=downlink,
            initial_model=initial_model,
        )
        federated = FederatedRun(
            data(),
            federation,
            registry.create("strategy", "fedavg"),
            registry.create("codec", "float32"),
            registry.create("codec", "float32"),
            seed=1,
        )
        return run_federated(mlp(), federated)

    delta = run("delta")
    first, second = delta.history
    if initial_model == "download":
        assert first.one_time_bytes == 6 * NUM_PARAMETERS * 4  # every client's model, in full
        assert delta.one_time_by_name == {"initial_model": first.one_time_bytes}
        assert first.downlink_bytes == 0  # nothing else that round
    else:
        assert first.one_time_bytes == 0  # built from the seed
        assert first.downlink_bytes == 6 * (2 + NUM_PARAMETERS * 4)  # a float32 delta each
    assert second.one_time_bytes == 0 and second.downlink_bytes == 6 * (2 + NUM_PARAMETERS * 4)
    assert run("model").one_time_bytes == 0


def test_the_channel_encodes_what_the_client_middleware_returned(registry):
    from fedsearch.federated import (
        ClientRuntime,
        Downlink,
        MiddlewareChain,
        SimulatedChannel,
        SimulatedGrid,
    )

    class Recording:
        def __init__(self):
            self.codec, self.encoded = registry.create("codec", "float32"), []

        def encode(self, tensors, *, client=None):
            self.encoded.append({name: tensor.clone() for name, tensor in tensors.items()})
            return self.codec.encode(tensors, client=client)

        def decode(self, payload, like, *, client=None):
            return self.codec.decode(payload, like, client=client)

    def sent_updates(factor):
        tiny, model = data(), mlp()
        trainer = LocalTrainer(
            model, tiny.train_inputs, tiny.train_labels, [], local_epochs=1, batch_size=4,
            learning_rate=0.1, generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        uplink = Recording()
        scale = registry.create("middleware", "scale_update", {"factor": factor})
        grid = SimulatedGrid(
            SimulatedChannel(
                downlink_codec=registry.create("codec", "float32"), uplink_codec=uplink
            ),
            ClientRuntime(trainer, tiny.client_indices),
            Downlink("model", weights),
            MiddlewareChain([scale], seed=0),
        )
        updates = grid.fit([1, 4], weights, {}, 0).updates
        return uplink.encoded, updates

    plain, _ = sent_updates(1.0)
    tripled, received = sent_updates(3.0)
    for before, after, update in zip(plain, tripled, received, strict=True):
        for name in before:
            torch.testing.assert_close(after[name], 3.0 * before[name])
            assert torch.equal(update.delta[name], after[name])  # the server got those bytes
