"""CKKS aggregation: the server adds ciphertexts it cannot decrypt; close sums; bytes count."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts
import torch
from fedsearch_builtins.secure_aggregation import CkksAggregator
from fedsearch_builtins.secure_aggregation._ckks import split

from fedsearch.federated import run_federated
from tests.secure._helpers import (
    RecordingChannel,
    quickstart_data,
    quickstart_model,
    quickstart_run,
)

TOLERANCE = 1e-6
"""Bound on |CKKS mean - plain mean| for updates of order 0.1 (docs/secure-aggregation.md)."""


def updates(count: int, length: int = 5000):
    rng = np.random.default_rng(0)
    return {
        client: {"w": torch.tensor(rng.normal(0, 0.1, length), dtype=torch.float32)}
        for client in range(count)
    }


def test_the_mean_matches_the_plain_weighted_mean_within_the_documented_tolerance():
    clients = updates(6)
    weights = {client: 10 + 5 * client for client in clients}
    channel = RecordingChannel()
    result = CkksAggregator().aggregate(channel, clients, weights, round_index=0, seed=0)
    total = sum(weights.values())
    plain = sum(weights[c] * clients[c]["w"].double() for c in clients) / total
    error = (result.mean_delta["w"].double() - plain).abs().max().item()
    assert error < TOLERANCE
    assert error > 0  # approximate arithmetic: not bit-exact
    assert result.total_weight == pytest.approx(total, abs=1e-6)


def test_the_server_holds_no_secret_key_and_receives_only_ciphertexts():
    clients = updates(3)
    aggregator = CkksAggregator()
    channel = RecordingChannel()
    aggregator.aggregate(channel, clients, dict.fromkeys(clients, 1), round_index=0, seed=0)
    assert not aggregator._server.is_private()
    assert all(not context.is_private() for context in aggregator._clients.values())
    for direction, client, name, payload in channel.messages:
        if direction == "uplink" and client is not None:
            assert name == "he.ciphertexts"
            parts = split(payload)
            assert len(parts) == -(-5001 // 4096)
            for part in parts:  # a ciphertext the public context parses, not plaintext floats
                ts.ckks_vector_from(aggregator._server, part)
                assert clients[client]["w"].numpy().tobytes()[:64] not in part
    names = [name for _, _, name, _ in channel.messages]
    assert names.count("he.sum_to_key_holder") == 1  # only the sum goes to the key holder


def test_every_byte_counted_is_the_length_of_a_message():
    clients = updates(4)
    channel = RecordingChannel()
    CkksAggregator().aggregate(channel, clients, dict.fromkeys(clients, 1), round_index=0, seed=0)
    traffic = channel.end_round()
    assert traffic.total == sum(len(payload) for *_, payload in channel.messages)
    assert traffic.one_time == 5 * len(channel.messages[0][3])  # public context: server + 4
    assert traffic.one_time_by_name == {"he.public_context": traffic.one_time}
    assert traffic.protocol_by_name["he.sum"] == 8 * 5001


@pytest.mark.slow
def test_training_accuracy_is_within_half_a_point_of_plain_fedavg_on_the_quickstart_workload():
    data = quickstart_data()
    plain = run_federated(quickstart_model(data), quickstart_run(data))
    encrypted = run_federated(quickstart_model(data), quickstart_run(data, CkksAggregator()))
    plain_accuracy = plain.history[-1].val_accuracy
    he_accuracy = encrypted.history[-1].val_accuracy
    assert abs(plain_accuracy - he_accuracy) <= 0.005, (plain_accuracy, he_accuracy)
    assert plain_accuracy > 0.9
    assert encrypted.uplink_bytes > 10 * plain.uplink_bytes  # ciphertext expansion, counted


def test_dropped_clients_are_left_out_of_the_mean():
    clients = updates(10, length=100)
    aggregator = CkksAggregator(CkksAggregator.Params(dropout=0.3))
    result = aggregator.aggregate(
        RecordingChannel(), clients, dict.fromkeys(clients, 1), round_index=0, seed=4
    )
    assert len(result.dropped) == 3
    assert set(result.survivors) == set(clients) - set(result.dropped)
    plain = torch.stack([clients[c]["w"].double() for c in result.survivors]).mean(0)
    assert (result.mean_delta["w"].double() - plain).abs().max().item() < TOLERANCE
