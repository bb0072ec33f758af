"""Compressors inside real federated rounds: masks survive aggregation, models shrink mid-run."""

from __future__ import annotations

import pytest
import torch

from fedsearch import CompressionContext
from fedsearch.config import FederationConfig
from fedsearch.federated import FederatedRun, accuracy, prepare_federated_data, run_federated


@pytest.fixture(scope="module")
def data(registry):
    splits = registry.create("dataset", "digits", {}).load()
    return prepare_federated_data(
        splits,
        val_fraction=0.2,
        partitioner=registry.create("partitioner", "iid", {}),
        num_clients=6,
        seed=0,
    )


def federated_run(registry, data, rounds, codec="float32"):
    federation = FederationConfig(
        num_clients=6, rounds=rounds, fraction=0.5, batch_size=32, learning_rate=0.3
    )
    return FederatedRun(
        data=data,
        federation=federation,
        strategy=registry.create("strategy", "fedavg", {}),
        downlink_codec=registry.create("codec", codec, {}),
        uplink_codec=registry.create("codec", codec, {}),
        seed=0,
    )


def compressed_run(
    registry, data, architecture, arch_params, compressors, rounds=6, codec="float32"
):
    torch.manual_seed(0)
    model = registry.create("architecture", architecture, arch_params).build(
        data.input_shape, data.num_classes
    )
    built = [registry.create("compressor", name, params) for name, params in compressors]
    for compressor in built:
        compressor.setup(CompressionContext(model, rounds, None))
    result = run_federated(model, federated_run(registry, data, rounds, codec), compressors=built)
    return model, built, result


@pytest.mark.parametrize("codec", ["float32", "float16"])
def test_pruned_weights_stay_zero_through_aggregation(registry, data, codec):
    params = {"sparsity": 0.8, "schedule": "gradual", "start_fraction": 0.2, "end_fraction": 0.6}
    _, (pruner,), result = compressed_run(
        registry, data, "mlp", {"widths": [32]}, [("magnitude", params)], codec=codec
    )
    for name, mask in pruner.masks.items():
        assert torch.all(result.weights[name][mask == 0] == 0)
    kept = sum(int(mask.sum()) for mask in pruner.masks.values())
    total = sum(mask.numel() for mask in pruner.masks.values())
    assert kept == total - round(0.8 * total)


def test_structured_pruning_mid_run_shrinks_traffic_and_model(registry, data):
    params = {"sparsity": 0.5, "start_fraction": 0.5}
    model, _, result = compressed_run(
        registry, data, "mlp", {"widths": [32, 16]}, [("structured", params)], rounds=10
    )
    downlink = [record.downlink_bytes for record in result.history]
    assert downlink[0] == downlink[4] and downlink[5] == downlink[9]
    assert downlink[5] < 0.5 * downlink[0]  # the smaller model is what crosses the channel
    assert (model[1].out_features, model[3].out_features) == (16, 8)
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in result.weights.items()
    }
    assert accuracy(model, data.val_inputs, data.val_labels, result.weights) > 0.5


def test_low_rank_then_quantized_model_trains_after_factorisation(registry, data):
    model, _, result = compressed_run(
        registry,
        data,
        "mlp",
        {"widths": [48]},
        [("svd", {"rank_ratio": 0.2, "start_fraction": 0.3}), ("uniform", {"bits": 6})],
        rounds=8,
    )
    assert "1.0.weight" in result.weights and "1.weight" not in result.weights
    assert tuple(result.weights["1.0.weight"].shape) == (10, 64)
    assert accuracy(model, data.val_inputs, data.val_labels, result.weights) > 0.5
