"""Built-in compressors against references and their own contracts."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from fedsearch import CompressionContext, StepContext, Teacher
from fedsearch.trial import build_artifact

torch.manual_seed(0)
SERVER = StepContext.evaluating(3)
CLIENT = StepContext(round=3, client=0, training=True)


def two_layer_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))


def weights_of(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def setup(registry, name, params, model, rounds=4, teacher=None):
    compressor = registry.create("compressor", name, params)
    compressor.setup(CompressionContext(model=model, num_rounds=rounds, teacher=teacher))
    return compressor


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.75, 0.99])
def test_magnitude_masks_equal_torch_global_unstructured(registry, sparsity):
    model = two_layer_model()
    weights = weights_of(model)
    pruner = setup(registry, "magnitude", {"sparsity": sparsity, "start_fraction": 0.0}, model)
    pruner.on_round_start(weights, 0)

    reference = two_layer_model()
    targets = [(reference[1], "weight"), (reference[3], "weight")]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
    expected = {"1.weight": reference[1].weight_mask, "3.weight": reference[3].weight_mask}
    if sparsity == 0.0:
        assert pruner.masks == {}
        return
    for name, mask in expected.items():
        assert torch.equal(pruner.masks[name], mask)
        assert torch.equal(weights[name] == 0, mask == 0)
    assert "1.bias" not in pruner.masks


def test_mask_is_fixed_at_the_start_round_and_keeps_weights_zero(registry):
    model = two_layer_model()
    pruner = setup(registry, "magnitude", {"sparsity": 0.5, "start_fraction": 0.5}, model, rounds=4)
    weights = weights_of(model)
    pruner.on_round_start(weights, 1)
    assert pruner.masks == {}
    pruner.on_round_start(weights, 2)
    zeros = int((weights["1.weight"] == 0).sum() + (weights["3.weight"] == 0).sum())
    assert zeros == round(0.5 * (16 * 12 + 12 * 4))
    moved = {name: tensor + 1.0 for name, tensor in weights.items()}
    seen = pruner.transform_parameters(moved, SERVER)
    assert torch.equal(seen["1.weight"] == 0, pruner.masks["1.weight"] == 0)
    # a client never sees the server's masks: it applies the zero pattern of its weights
    on_client = pruner.transform_parameters(moved, CLIENT)
    assert not (on_client["1.weight"] == 0).any()
    on_client = pruner.transform_parameters(weights, CLIENT)
    assert torch.equal(on_client["1.weight"] == 0, pruner.masks["1.weight"] == 0)


def test_quantized_forward_equals_the_stored_artifact_values(registry):
    model = two_layer_model()
    quantizer = setup(registry, "uniform", {"bits": 4}, model)
    weights = weights_of(model)
    seen = quantizer.transform_parameters(weights, CLIENT)
    stored = quantizer.stored_tensors(weights)
    assert set(stored) == {"1.weight", "3.weight"}
    for name, tensor in stored.items():
        assert tensor.bits == 4
        assert int(abs(tensor.codes).max()) == 7
        assert torch.equal(torch.from_numpy(tensor.dequantize()), seen[name])
        assert len(torch.unique(seen[name])) <= 15
    assert torch.equal(seen["1.bias"], weights["1.bias"])


def test_quantization_matches_torch_fake_quantize_per_tensor(registry):
    weight = torch.randn(64, 32)
    model = nn.Sequential(nn.Linear(32, 64))
    quantizer = setup(registry, "uniform", {"bits": 8}, model)
    seen = quantizer.transform_parameters({"0.weight": weight, "0.bias": torch.zeros(64)}, CLIENT)
    scale = float(weight.abs().max() / 127)
    reference = torch.fake_quantize_per_tensor_affine(weight, scale, 0, -127, 127)
    assert torch.allclose(seen["0.weight"], reference, atol=1e-6)


def test_straight_through_estimator_passes_gradients(registry):
    model = two_layer_model()
    quantizer = setup(registry, "uniform", {"bits": 2}, model)
    weights = {name: tensor.requires_grad_() for name, tensor in weights_of(model).items()}
    quantizer.transform_parameters(weights, CLIENT)["1.weight"].sum().backward()
    assert torch.equal(weights["1.weight"].grad, torch.ones(12, 16))


def test_bits_32_switches_quantization_off(registry):
    model = two_layer_model()
    quantizer = setup(registry, "uniform", {"bits": 32}, model)
    weights = weights_of(model)
    assert quantizer.transform_parameters(weights, CLIENT) is weights
    assert quantizer.stored_tensors(weights) == {}


def test_pruned_and_quantized_artifact_is_much_smaller(registry):
    from fedsearch import ModelSpec

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256))
    weights = weights_of(model)
    pruner = setup(registry, "magnitude", {"sparsity": 0.9, "start_fraction": 0.0}, model)
    quantizer = setup(registry, "uniform", {"bits": 4}, model)
    spec = ModelSpec("mlp", {}, (256,), 256)
    dense = build_artifact(spec, weights)
    pruner.on_round_start(weights, 0)
    pruned = build_artifact(spec, weights)
    compressed = build_artifact(spec, weights, [pruner, quantizer])
    assert len(dense) > (256 * 256 + 256) * 4 * 0.8  # float32, entropy coding saves a little
    # pruned float32: 10% of the values plus a 1-bit-per-weight bitmap
    assert len(pruned) < len(dense) * (0.1 + 1 / 32 + 0.01)
    # 4-bit codes: about an eighth of that again for the values
    assert len(compressed) < len(dense) / 20


def test_soft_target_loss_blends_kl_and_cross_entropy(registry):
    from fedsearch import Batch

    torch.manual_seed(0)
    teacher_logits = torch.randn(6, 3)
    teacher = Teacher({"w": torch.zeros(5)}, teacher_logits, 0.9, 0.9, 100)
    distiller = setup(
        registry,
        "soft_target",
        {"temperature": 4.0, "alpha": 0.25},
        nn.Linear(2, 3),
        teacher=teacher,
    )
    logits = torch.randn(2, 3)
    batch = Batch(torch.zeros(2, 2), torch.tensor([0, 2]), torch.tensor([4, 1]))
    hard = torch.tensor(1.7)
    p_teacher = torch.softmax(teacher_logits[[4, 1]] / 4.0, dim=1)
    log_student = torch.log_softmax(logits / 4.0, dim=1)
    kl = (p_teacher * (p_teacher.log() - log_student)).sum(dim=1).mean()
    expected = 0.25 * 16.0 * kl + 0.75 * hard
    assert torch.allclose(distiller.training_loss(hard, logits, batch, CLIENT), expected, atol=1e-6)
    assert distiller.one_time_downloads() == {"teacher": teacher.weights}


def test_distillation_without_a_teacher_is_a_config_error(registry):
    from fedsearch import ConfigError

    with pytest.raises(ConfigError, match="needs a teacher"):
        setup(registry, "soft_target", {}, nn.Linear(2, 3))


def test_a_clients_mask_follows_layers_renamed_by_factorisation(registry):
    model = two_layer_model()
    svd = setup(registry, "svd", {"start_fraction": 0.0, "rank_ratio": 0.25}, model)
    pruner = setup(registry, "magnitude", {"sparsity": 0.5, "start_fraction": 0.0}, model)
    weights = weights_of(model)
    svd.on_round_start(weights, 0)
    pruner.on_round_start(weights, 0)
    seen = pruner.transform_parameters(weights, CLIENT)
    assert "1.0.weight" in seen and "1.weight" not in seen
    assert torch.equal(seen["1.0.weight"] == 0, weights["1.0.weight"] == 0)
