"""The channel counts exactly the bytes of the encoded payloads that cross it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedsearch import compose_codecs
from fedsearch.federated import (
    ClientRuntime,
    Downlink,
    LocalTrainer,
    MiddlewareChain,
    SimulatedChannel,
    SimulatedGrid,
)


def pipeline(registry, stages):
    return compose_codecs([registry.create("codec", name, params) for name, params in stages])


class RecordingCodec:
    """Wraps a codec and keeps every payload it produced."""

    def __init__(self, codec):
        self.codec = codec
        self.payloads: list[bytes] = []

    def encode(self, tensors, *, client=None):
        payload = self.codec.encode(tensors, client=client)
        self.payloads.append(payload)
        return payload

    def decode(self, payload, like, *, client=None):
        return self.codec.decode(payload, like, client=client)


class Grid:
    """A grid over four clients, counting per round like ``run_federated`` does."""

    def __init__(self, grid: SimulatedGrid):
        self.grid = grid
        self.channel = grid.channel
        self.downlink = grid.downlink
        self.rounds = []
        self.total = None

    def train(self, client_ids, weights):
        replies = self.grid.fit(client_ids, weights, {}, len(self.rounds))
        self.rounds.append(replies.metrics.traffic)
        self.total = self.rounds[0] if len(self.rounds) == 1 else self.total + self.rounds[-1]
        return replies.updates

    @property
    def traffic(self):
        return self.total


def make_channel(
    registry,
    downloads=None,
    codec="float32",
    *,
    up_stages=None,
    down_stages=None,
    downlink="model",
    initial_model="seeded",
):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    inputs, labels = torch.randn(40, 4), torch.randint(0, 3, (40,))
    trainer = LocalTrainer(
        model,
        inputs,
        labels,
        [],
        local_epochs=1,
        batch_size=8,
        learning_rate=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    down = RecordingCodec(pipeline(registry, down_stages or [(codec, {})]))
    up = RecordingCodec(pipeline(registry, up_stages or [(codec, {})]))
    clients = [np.arange(10 * k, 10 * k + 10) for k in range(4)]
    weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    grid = SimulatedGrid(
        SimulatedChannel(downlink_codec=down, uplink_codec=up),
        ClientRuntime(trainer, clients),
        Downlink(downlink, weights, initial_model=initial_model, one_time_downloads=downloads),
        MiddlewareChain((), seed=0),
    )
    return Grid(grid), down, up, weights


def test_bytes_are_the_lengths_of_the_real_payloads(registry):
    channel, down, up, weights = make_channel(registry)
    channel.train([0, 2, 3], weights)
    channel.train([1], weights)
    # one downlink payload per round, received by each selected client
    assert channel.traffic.downlink == len(down.payloads[0]) * 3 + len(down.payloads[1]) * 1
    assert channel.traffic.uplink == sum(len(payload) for payload in up.payloads)
    assert len(up.payloads) == 4
    # float32: a tag byte, a one-byte count, 4 bytes per value of the 4x3 weight and 3 biases
    assert len(down.payloads[0]) == 2 + (12 + 3) * 4
    assert channel.traffic.total == channel.traffic.downlink + channel.traffic.uplink


def test_one_time_downloads_are_counted_once_per_client(registry):
    teacher = {"w": torch.zeros(100)}
    channel, *_, weights = make_channel(registry, downloads={"teacher": teacher})
    channel.train([0, 1], weights)
    channel.train([1, 2], weights)
    assert channel.traffic.one_time == 3 * 100 * 4  # raw float32, once per client


def test_float16_halves_the_payload_and_rounds(registry):
    channel32, down32, _, weights = make_channel(registry)
    channel16, down16, _, _ = make_channel(registry, codec="float16")
    channel32.train([0], weights)
    channel16.train([0], weights)
    assert (len(down16.payloads[0]) - 2) * 2 == len(down32.payloads[0]) - 2


def test_updates_are_decoded_deltas_against_what_the_client_received(registry):
    channel, _, _, weights = make_channel(registry)
    (update,) = channel.train([2], weights)
    assert update.client_id == 2 and update.num_examples == 10
    assert set(update.delta) == set(weights)
    assert any(delta.abs().sum() > 0 for delta in update.delta.values())


def test_compressed_uplink_bytes_are_the_real_payloads_and_updates_are_sparse(registry):
    stages = [("error_feedback", {}), ("topk", {"fraction": 0.2})]
    channel, _, up, weights = make_channel(registry, up_stages=stages)
    updates = channel.train([0, 1, 3], weights)
    updates += channel.train([1, 2], weights)
    assert channel.traffic.uplink == sum(len(payload) for payload in up.payloads)
    assert len(up.payloads) == 5
    for update in updates:
        nonzero = sum(int((delta != 0).sum()) for delta in update.delta.values())
        assert 1 <= nonzero <= 3  # ceil(0.2 * 15)
    # residuals exist for the clients that sent, and only for them
    assert set(up.codec.residuals) == {0, 1, 2, 3}
    assert channel.traffic.uplink < channel.traffic.downlink


def test_delta_downlink_sends_each_client_its_own_payload(registry):
    channel, down, _, weights = make_channel(registry, downlink="delta")
    channel.train([0, 2], weights)
    channel.train([2, 3], weights)
    assert len(down.payloads) == 4  # one per recipient, not one per round
    assert channel.traffic.downlink == sum(len(payload) for payload in down.payloads)
    assert set(channel.downlink.references()) == {0, 2, 3}
    assert channel.downlink.reference_bytes == 3 * 15 * 4
    lossless = channel.downlink.references()[2]
    assert all(torch.allclose(lossless[name], weights[name], atol=1e-7) for name in weights)


def test_delta_downlink_with_top_k_catches_up_with_a_fixed_model(registry):
    stages = [("topk", {"fraction": 0.25})]
    channel, down, _, weights = make_channel(registry, down_stages=stages, downlink="delta")
    target = {
        name: tensor + 1.0 + torch.arange(tensor.numel()).reshape(tensor.shape) * 0.1
        for name, tensor in weights.items()
    }
    channel.train([1], weights)  # the initial model is the reference: nothing to send
    references = channel.downlink.references()
    assert all(torch.equal(ref, weights[name]) for name, ref in references[1].items())
    gaps = []
    for _ in range(4):
        received = channel.downlink.send(channel.channel, [1], target)[1]
        gaps.append(sum(float((received[n] - target[n]).abs().sum()) for n in target))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[3] < 1e-5  # 4 x 25% covers every value
    sent = channel.traffic.downlink + channel.channel.end_round().downlink
    assert sent == sum(len(payload) for payload in down.payloads)


def test_model_downlink_is_one_payload_per_round_and_keeps_no_references(registry):
    channel, down, up, weights = make_channel(registry, codec="float16")
    channel.train([0, 1], weights)
    assert len(down.payloads) == 1 and len(up.payloads) == 2
    assert channel.traffic.downlink == 2 * len(down.payloads[0])
    assert channel.downlink.reference_bytes == 0
