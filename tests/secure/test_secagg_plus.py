"""SecAgg+: exact sums under dropout, a server that only ever receives masked data, bytes."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from fedsearch_builtins.codecs import Float32Codec
from fedsearch_builtins.secure_aggregation import SecAggPlus
from fedsearch_builtins.secure_aggregation import _messages as msg
from fedsearch_builtins.secure_aggregation._field import FieldSpec
from fedsearch_builtins.secure_aggregation._graph import harary_graph
from fedsearch_builtins.secure_aggregation._parties import SEALED_SHARE, SecAggClient
from fedsearch_builtins.secure_aggregation._protocol import secure_sum

from fedsearch import FedsearchError
from fedsearch.federated import run_federated
from tests.secure._helpers import (
    RecordingChannel,
    quickstart_data,
    quickstart_model,
    quickstart_run,
)

FIELD = FieldSpec(bits=32, quantization_bits=16, clip=1.0, max_weight=1000)
LENGTH = 500


def client_vectors(count: int, seed: int = 0) -> dict[int, np.ndarray]:
    """Each client's quantized, weighted update (weights 20 + client)."""
    rng = np.random.default_rng(seed)
    return {
        client: FIELD.quantize({"w": torch.tensor(rng.normal(0, 0.2, LENGTH))}, 20 + client)
        for client in range(count)
    }


@pytest.mark.parametrize(("count", "degree"), [(10, 0), (30, 16)])
def test_30_percent_dropping_after_sharing_keys_leaves_the_exact_sum_of_the_survivors(
    count, degree
):
    vectors = client_vectors(count)
    result = secure_sum(
        RecordingChannel(),
        vectors,
        FIELD,
        round_index=0,
        seed=7,
        degree=degree,
        dropout=0.3,
        dropout_after="share_keys",
    )
    assert len(result.dropped) == round(0.3 * count)
    assert set(result.survivors) == set(vectors) - set(result.dropped)
    plain = np.zeros(LENGTH + 1, dtype=np.uint64)
    for client in result.survivors:
        plain = (plain + vectors[client]) & FIELD.modulus_mask
    assert np.array_equal(result.total, plain)
    signed = FIELD.signed(result.total)
    assert signed[-1] == sum(20 + client for client in result.survivors)


def test_the_30_client_graph_is_sparse():
    graph = harary_graph(list(range(30)), 16, np.random.default_rng(7))
    assert {len(near) for near in graph.values()} == {16}
    assert all(u in graph[v] for u in graph for v in graph[u])


@pytest.mark.parametrize("stage", ["advertise_keys", "masked_input"])
def test_dropping_at_other_stages_also_leaves_the_exact_sum(stage):
    vectors = client_vectors(12, seed=1)
    result = secure_sum(
        RecordingChannel(), vectors, FIELD, round_index=3, seed=1, dropout=0.25, dropout_after=stage
    )
    survivors = set(vectors) - set(result.dropped) if stage != "masked_input" else set(vectors)
    assert set(result.survivors) == survivors
    plain = sum(vectors[client] for client in survivors) & FIELD.modulus_mask
    assert np.array_equal(result.total, plain)


def test_the_server_only_ever_receives_keys_sealed_shares_masked_vectors_and_requested_shares():
    vectors = client_vectors(10)
    channel = RecordingChannel()
    result = secure_sum(channel, vectors, FIELD, round_index=0, seed=7, dropout=0.3)
    uplink = [
        (client, name, payload) for d, client, name, payload in channel.messages if d == "uplink"
    ]
    assert {name for _, name, _ in uplink} == {
        "secagg.advertise_keys",
        "secagg.share_keys",
        "secagg.masked_input",
        "secagg.unmasking",
    }
    plain_encodings = {client: FIELD.encode(vector) for client, vector in vectors.items()}
    for client, name, payload in uplink:
        for encoding in plain_encodings.values():  # no update, nor a 64-byte piece of one
            assert encoding[:64] not in payload
        if name == "secagg.masked_input":
            masked = FIELD.decode(payload[1:])
            assert np.mean(masked == vectors[client]) < 0.01
            assert len(payload) == 1 + FIELD.element_bytes * (LENGTH + 1)
        if name == "secagg.share_keys":  # sealed: no share in the clear
            records = msg.unpack_records(payload[1:], SEALED_SHARE)
            assert all(len(sealed) == SEALED_SHARE for _, sealed in records)
    assert len(result.survivors) == 7


def test_a_client_refuses_to_reveal_both_shares_of_one_peer():
    client = SecAggClient(0, client_vectors(1)[0], FIELD, 0)
    request = msg.tagged(msg.UNMASK_REQUEST, msg.pack_ids([3]) + msg.pack_ids([3]))
    with pytest.raises(FedsearchError, match="refuses"):
        client.unmask(request)


def test_too_many_dropouts_abort_the_round_with_a_fix():
    with pytest.raises(FedsearchError, match="lower dropout or threshold"):
        secure_sum(RecordingChannel(), client_vectors(5), FIELD, round_index=0, seed=0, dropout=0.4)


def test_every_byte_counted_is_the_length_of_an_encoded_protocol_message():
    vectors = client_vectors(10)
    channel = RecordingChannel()
    secure_sum(channel, vectors, FIELD, round_index=0, seed=7, dropout=0.3)
    traffic = channel.end_round()
    lengths = {"uplink": 0, "downlink": 0}
    for direction, _, _, payload in channel.messages:
        lengths[direction] += len(payload)
    assert (traffic.uplink, traffic.downlink) == (lengths["uplink"], lengths["downlink"])
    assert sum(traffic.protocol_by_name.values()) == traffic.total
    # the formats: 10 advertisements of two 32-byte keys, 7 masked vectors
    assert traffic.protocol_by_name["secagg.advertise_keys"] == 10 * (1 + 64)
    assert traffic.protocol_by_name["secagg.masked_input"] == 7 * (1 + 4 * (LENGTH + 1))
    setup = traffic.protocol_by_name["secagg.setup"]
    assert setup == 10 * (1 + 2 + 4 + 4 * 9)  # complete graph of 10: 9 neighbours each
    (threshold,) = struct.unpack_from("<H", channel.messages[0][3], 1)
    assert threshold == 5


def test_training_under_secagg_with_dropout_counts_every_protocol_byte():
    data = quickstart_data()
    secure = SecAggPlus(SecAggPlus.Params(dropout=0.2))
    result = run_federated(quickstart_model(data), quickstart_run(data, secure, rounds=3))
    assert result.dropped_clients == 3  # one of the five clients in each of 3 rounds
    protocol = sum(result.protocol_by_name.values())
    model = quickstart_model(data)
    parameters = sum(p.numel() for p in model.parameters())
    payload = len(Float32Codec().encode(dict(model.state_dict())))
    model_downloads = 3 * 5 * payload  # the float32 model to 5 clients a round
    assert result.comm_bytes == model_downloads + protocol
    assert result.uplink_bytes == sum(
        size
        for name, size in result.protocol_by_name.items()
        if name
        in {"secagg.advertise_keys", "secagg.share_keys", "secagg.masked_input", "secagg.unmasking"}
    )
    assert result.plain_uplink_bytes == 3 * 4 * 4 * parameters  # 4 survivors a round


@pytest.mark.slow
def test_secagg_training_accuracy_matches_plain_fedavg_on_the_quickstart_workload():
    data = quickstart_data()
    plain = run_federated(quickstart_model(data), quickstart_run(data))
    secure = run_federated(quickstart_model(data), quickstart_run(data, SecAggPlus()))
    gap = abs(plain.history[-1].val_accuracy - secure.history[-1].val_accuracy)
    assert gap <= 0.005, (plain.history[-1], secure.history[-1])


def test_same_seed_same_weights_and_bytes_although_keys_are_fresh():
    data = quickstart_data()
    runs = [
        run_federated(
            quickstart_model(data),
            quickstart_run(data, SecAggPlus(SecAggPlus.Params(dropout=0.2)), rounds=2),
        )
        for _ in range(2)
    ]
    assert runs[0].comm_bytes == runs[1].comm_bytes
    for name, tensor in runs[0].weights.items():
        assert torch.equal(tensor, runs[1].weights[name])
