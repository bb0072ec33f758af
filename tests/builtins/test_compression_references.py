"""Built-in compressors against reference implementations and closed-form bounds."""

from __future__ import annotations

import math

import pytest
import torch
from fedsearch_builtins.lowrank import factorize_conv_tucker, factorize_linear, truncated_svd
from fedsearch_builtins.pruning import cubic_sparsity
from fedsearch_builtins.quantization import QuantizerSpec, affine_params, code_limits
from torch import nn
from torch.nn.utils import prune

from fedsearch import CompressionContext, ModelSpec
from fedsearch.trial import build_artifact, load_model


def setup(registry, name, params, model, rounds=4):
    compressor = registry.create("compressor", name, params)
    compressor.setup(CompressionContext(model=model, num_rounds=rounds, teacher=None))
    return compressor


def mlp(seed=1):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 6))


@pytest.mark.parametrize("sparsity", [0.2, 0.5, 0.9])
def test_per_layer_masks_equal_torch_l1_unstructured(registry, sparsity):
    model = mlp()
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    pruner = setup(registry, "magnitude", {"sparsity": sparsity, "scope": "layer",
                                            "start_fraction": 0.0}, model)  # fmt: skip
    pruner.on_round_start(weights, 0)
    reference = mlp()
    for index in (1, 3):
        prune.l1_unstructured(reference[index], "weight", amount=sparsity)
        assert torch.equal(pruner.masks[f"{index}.weight"], reference[index].weight_mask)


def test_gradual_schedule_is_zhu_gupta_cubic_and_masks_only_grow(registry):
    model = mlp()
    rounds = 10
    pruner = setup(registry, "magnitude", {"sparsity": 0.8, "schedule": "gradual",
                                            "start_fraction": 0.2, "end_fraction": 0.7},
                   model, rounds)  # fmt: skip
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    total = 20 * 16 + 16 * 6
    previous = torch.ones(total, dtype=torch.bool)
    for round_index in range(rounds):
        pruner.on_round_start(weights, round_index)
        expected = cubic_sparsity(0.8, round_index, 2, 7)
        assert expected == pytest.approx(0.8 * (1 - (1 - min(max(round_index - 2, 0), 5) / 5) ** 3)
                                         if round_index >= 2 else 0.0)  # fmt: skip
        kept = torch.cat([(weights[n] != 0).reshape(-1) for n in ("1.weight", "3.weight")])
        assert int((~kept).sum()) == round(expected * total)
        assert not (kept & ~previous).any()  # a pruned weight never comes back
        previous = kept
        weights = {name: tensor + 0.01 for name, tensor in weights.items()}  # a round of training
    assert int((~previous).sum()) == round(0.8 * total)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_per_tensor_fake_quantization_equals_torch(bits, symmetric):
    weight = torch.randn(32, 24) * 0.3 + (0.0 if symmetric else 0.1)
    scale, zero_point = affine_params(weight, bits, symmetric, axis=None)
    low, high = code_limits(bits, symmetric)
    ours = QuantizerSpec(bits, symmetric, per_channel=False, calibrate=False).fake_quantize(weight)
    reference = torch.fake_quantize_per_tensor_affine(
        weight, float(scale), int(zero_point), low, high
    )
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("bits", [3, 5, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_per_channel_fake_quantization_equals_torch(bits, symmetric):
    weight = torch.randn(10, 3, 3, 3)
    scale, zero_point = affine_params(weight, bits, symmetric, axis=0)
    low, high = code_limits(bits, symmetric)
    ours = QuantizerSpec(bits, symmetric, per_channel=True, calibrate=False).fake_quantize(weight)
    reference = torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, low, high)
    assert torch.equal(ours, reference)


def test_calibration_never_does_worse_than_the_full_range():
    weight = torch.randn(64, 64)
    weight[0, 0] = 12.0  # an outlier
    plain = QuantizerSpec(3, True, False, calibrate=False).fake_quantize(weight)
    calibrated = QuantizerSpec(3, True, False, calibrate=True).fake_quantize(weight)
    assert (calibrated - weight).square().sum() < 0.5 * (plain - weight).square().sum()


@pytest.mark.parametrize("rank", [1, 3, 7])
def test_svd_error_equals_the_eckart_young_bound(rank):
    torch.manual_seed(0)
    weight = torch.randn(12, 9, dtype=torch.float64)
    second, first = truncated_svd(weight, rank)
    error = torch.linalg.matrix_norm(weight - second @ first)
    singular = torch.linalg.svdvals(weight)
    assert error.item() == pytest.approx(math.sqrt(float(singular[rank:].square().sum())), rel=1e-9)


def test_factorized_linear_layer_computes_the_truncated_product():
    torch.manual_seed(0)
    weight = torch.randn(40, 30)
    factors = factorize_linear(weight, bias=True, ratio=0.2)
    assert [layer.weight.shape for layer in factors] == [(6, 30), (40, 6)]
    second, first = truncated_svd(weight, 6)
    assert torch.allclose(factors[1].weight @ factors[0].weight, second @ first, atol=1e-5)
    assert factorize_linear(weight, bias=True, ratio=0.9) is None  # would not be smaller


def test_tucker_at_full_rank_is_exact():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 8, 3, padding=1)
    full = factorize_conv_tucker(conv, conv.weight.detach(), True, 1.0)
    assert full is None  # full rank is not smaller, so it is refused
    from fedsearch_builtins.lowrank import tucker2

    u_out, core, u_in = tucker2(conv.weight.detach(), 8, 6)
    rebuilt = torch.einsum("rskl,or,is->oikl", core, u_out, u_in)
    assert torch.allclose(rebuilt, conv.weight.detach(), atol=1e-5)


def test_structured_pruning_of_half_the_filters_halves_params_and_artifact(registry):
    family = registry.create("architecture", "lenet5", {})
    torch.manual_seed(0)
    model = family.build((1, 28, 28), 10)
    dense_params = sum(p.numel() for p in model.parameters())
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    spec = ModelSpec("lenet5", {}, (1, 28, 28), 10)
    dense = build_artifact(spec, weights)
    pruner = setup(registry, "structured", {"sparsity": 0.5, "layers": "conv",
                                             "start_fraction": 0.0}, model)  # fmt: skip
    pruner.on_round_start(weights, 0)
    assert [len(kept) for kept in pruner.kept.values()] == [10, 25]
    pruned_params = sum(p.numel() for p in model.parameters())
    assert pruned_params == sum(t.numel() for t in weights.values())
    assert 0.45 < pruned_params / dense_params < 0.55
    reference = family.build((1, 28, 28), 10)
    artifact = build_artifact(spec, weights, [pruner], model=model, reference=reference)
    assert 0.45 < len(artifact) / len(dense) < 0.55
    decoded = load_model(artifact, registry)
    assert sum(p.numel() for p in decoded.parameters()) == pruned_params
    inputs = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(
            decoded(inputs), torch.func.functional_call(model, weights, (inputs,))
        )


def test_structured_pruning_keeps_the_largest_norm_filters(registry):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4, 3))
    with torch.no_grad():
        for index, value in enumerate([0.1, 3.0, -2.0, 0.5]):
            model[0].weight[index] = value
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    pruner = setup(registry, "structured", {"sparsity": 0.5, "start_fraction": 0.0}, model)
    before = weights["3.weight"].clone()
    pruner.on_round_start(weights, 0)
    assert pruner.kept["0"] == [1, 2]
    assert torch.equal(weights["3.weight"], before[:, 4:12])  # the inputs those filters fed
    assert model[3].in_features == 8 and model[0].out_channels == 2


def test_structured_pruning_takes_a_ratio_per_layer(registry):
    family = registry.create("architecture", "lenet5", {})
    torch.manual_seed(0)
    model = family.build((1, 28, 28), 10)
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    params = {"per_layer": 2, "layer_sparsity": [0.25, 0.8], "sparsity": 0.5,
              "start_fraction": 0.0}  # fmt: skip
    pruner = setup(registry, "structured", params, model)
    pruner.on_round_start(weights, 0)
    # conv 20 filters keep 15, conv 50 keep 10, fc 500 (no ratio of its own) keeps 250
    assert [len(kept) for kept in pruner.kept.values()] == [15, 10, 250]
    assert weights["5.weight"].shape == (250, 10 * 4 * 4)  # fc 500 reads the 10 kept maps
    assert weights["7.weight"].shape == (10, 250)


def test_per_layer_structured_ratios_are_search_dimensions(registry):
    from fedsearch.config import DimensionConfig
    from fedsearch.search._space import SearchSpace, Sourced

    space = SearchSpace.resolve(
        {"architecture": Sourced(["mlp"], "s"), "prune": Sourced(["structured"], "s")},
        {"prune.structured.per_layer": Sourced(DimensionConfig(value=2), "s")},
        registry,
    )
    names = [row[0] for row in space.rows()]
    assert "prune.structured.layer_sparsity.<i>" in names
    import optuna

    trial = optuna.create_study().ask()
    chosen = space.suggest(trial).compressors["prune"].params
    assert chosen["per_layer"] == 2 and len(chosen["layer_sparsity"]) == 2
    assert {"prune.structured.layer_sparsity.0", "prune.structured.layer_sparsity.1"} <= set(
        trial.params
    )
