"""The channel counts exactly the bytes of the encoded payloads that cross it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedsearch.federated import LocalTrainer, SimulatedChannel


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


def make_channel(registry, downloads=None, codec="float32"):
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
    down = RecordingCodec(registry.create("codec", codec))
    up = RecordingCodec(registry.create("codec", codec))
    clients = [np.arange(10 * k, 10 * k + 10) for k in range(4)]
    channel = SimulatedChannel(
        trainer, clients, downlink_codec=down, uplink_codec=up, one_time_downloads=downloads
    )
    weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    return channel, down, up, weights


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
