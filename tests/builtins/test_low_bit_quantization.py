"""2 and 3 bits: per-channel scales and the least-squared-error step instead of max|w|."""

from __future__ import annotations

import pytest
import torch
from fedsearch_builtins.quantization import QuantizerSpec
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from fedsearch import CompressionContext, evaluate_selection, resolve_study
from fedsearch.artifact import describe_artifact
from fedsearch.search import ComponentChoice, Selection
from fedsearch.study import prepare_runtime
from tests.conftest import write_tiny_study

QUICKSTART_LIKE = """
name = "lowbit"
seed = 0
output_dir = "{output}"

[dataset]
name = "digits"
val_fraction = 0.15

[federation]
num_clients = 10
rounds = 10
fraction = 0.5
local_epochs = 2
batch_size = 16
learning_rate = 0.3

[search]
space = "space.toml"
n_trials = 1
sampler = {{ name = "random" }}
"""


@pytest.fixture(scope="module")
def trained_weight() -> torch.Tensor:
    """The first layer of an MLP trained on the digits (heavy-tailed, rows of unequal range)."""
    digits = load_digits()
    inputs = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    for _ in range(200):
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    assert (model(inputs).argmax(1) == labels).float().mean() > 0.9
    return model[0].weight.detach()


def squared_error(spec: QuantizerSpec, weight: torch.Tensor) -> float:
    return float((spec.fake_quantize(weight) - weight).square().sum())


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [2, 3])
def test_the_searched_step_beats_the_full_range(trained_weight, bits, symmetric):
    full_range = squared_error(QuantizerSpec(bits, symmetric, False, False), trained_weight)
    per_channel = squared_error(QuantizerSpec(bits, symmetric, True, False), trained_weight)
    searched = squared_error(QuantizerSpec(bits, symmetric, True, True), trained_weight)
    assert searched < per_channel < full_range
    assert searched < 0.6 * full_range


def test_two_bits_no_longer_round_nearly_every_weight_to_zero(trained_weight):
    full_range = QuantizerSpec(2, True, False, False).fake_quantize(trained_weight)
    searched = QuantizerSpec(2, True, True, True).fake_quantize(trained_weight)
    assert (full_range == 0).float().mean() > 0.8
    assert (searched == 0).float().mean() < 0.7


def test_low_bit_defaults_are_per_channel_and_searched(registry):
    quantizer = registry.create("compressor", "uniform", {"bits": 2})
    quantizer.setup(_context(registry))
    specs = quantizer._specs()
    assert specs and all(spec.axis == 0 and spec.calibrate for spec in specs.values())
    wide = registry.create("compressor", "uniform", {"bits": 4})
    wide.setup(_context(registry))
    assert all(spec.axis is None and not spec.calibrate for spec in wide._specs().values())
    forced = registry.create("compressor", "uniform", {"bits": 2, "step": "max"})
    forced.setup(_context(registry))
    assert not any(spec.calibrate for spec in forced._specs().values())


def _context(registry):
    model = registry.create("architecture", "mlp", {"widths": [16]}).build((1, 8, 8), 10)
    return CompressionContext(model=model, num_rounds=4, teacher=None)


def test_a_two_bit_quickstart_like_trial_learns(tmp_path, registry):
    space = '[slots]\narchitecture = ["mlp"]\nquantize = ["uniform"]\n'
    study = resolve_study(write_tiny_study(tmp_path, QUICKSTART_LIKE, space), registry)
    runtime = prepare_runtime(study)
    student = ComponentChoice("mlp", {"depth": 1, "widths": [64]})
    two_bits = Selection(student, {"quantize": ComponentChoice("uniform", {"bits": 2})})
    outcome = evaluate_selection(runtime, two_bits)
    print(f"2-bit MLP 64-64-10, 10 rounds: validation accuracy {outcome.val_accuracy:.4f}")
    assert outcome.val_accuracy > 0.8  # chance is 0.1
    assert [layer.bits for layer in describe_artifact(outcome.artifact)] == [2, 32, 2, 32]


def _cnn_quantizer(registry, params):
    model = registry.create("architecture", "cnn", {"channels": [4, 8], "hidden": 16})
    quantizer = registry.create("compressor", "uniform", params)
    quantizer.setup(CompressionContext(model=model.build((1, 8, 8), 10), num_rounds=4,
                                       teacher=None))  # fmt: skip
    return quantizer


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"bits": 2}, [8, 2, 2, 8]),
        ({"bits": 3, "ends": "same"}, [3, 3, 3, 3]),
        ({"bits": 4}, [4, 4, 4, 4]),
        ({"bits": 4, "ends": "int8"}, [8, 4, 4, 8]),
    ],
)
def test_low_widths_keep_the_first_and_last_layer_at_eight_bits(registry, params, expected):
    quantizer = _cnn_quantizer(registry, params)
    assert [spec.bits for spec in quantizer._specs().values()] == expected


def test_a_two_layer_mlp_stays_at_its_width_everywhere(registry):
    quantizer = registry.create("compressor", "uniform", {"bits": 2})
    quantizer.setup(_context(registry))
    assert [spec.bits for spec in quantizer._specs().values()] == [2, 2]


def test_the_step_is_searched_once_a_round_from_the_received_weights(registry, monkeypatch):
    from fedsearch.components import StepContext

    quantizer = _cnn_quantizer(registry, {"bits": 2})
    received = {name: value.clone() for name, value in quantizer.model.state_dict().items()}
    searches = []
    original = QuantizerSpec.clip_ratios
    monkeypatch.setattr(
        QuantizerSpec, "clip_ratios", lambda spec, w: searches.append(w.shape) or original(spec, w)
    )
    quantizer.on_local_training_start(received, round_index=1)
    assert len(searches) == 2  # one per 2-bit tensor (the 8-bit ends keep max|w|), not per step
    moved = {name: value * 1.5 for name, value in received.items()}
    training = StepContext(round=1, client=0, training=True)
    for _ in range(5):
        seen = quantizer.transform_parameters(moved, training)
    assert len(searches) == 2
    name, spec = next((n, s) for n, s in quantizer._specs().items() if s.calibrate)
    scale, zero_point = spec.params(moved[name], original(spec, received[name]))
    assert torch.equal(seen[name], spec.fake(moved[name], scale, zero_point))
    # evaluation and the artifact search afresh on the weights they are given
    evaluated = quantizer.transform_parameters(moved, StepContext.evaluating(1))
    assert len(searches) == 4
    assert torch.equal(evaluated[name], spec.fake_quantize(moved[name]))


@pytest.mark.parametrize(
    ("params", "symmetric"),
    [({"bits": 2}, False), ({"bits": 3}, True), ({"bits": 2, "scheme": "symmetric"}, True)],
)
def test_two_bits_use_all_four_codes_by_default(registry, params, symmetric):
    quantizer = _cnn_quantizer(registry, {**params, "ends": "same"})
    specs = list(quantizer._specs().values())
    assert all(spec.symmetric is symmetric for spec in specs)
    weight = quantizer.model.state_dict()[next(iter(quantizer._specs()))]
    levels = {len(row.unique()) for row in specs[0].fake_quantize(weight).flatten(1)}
    assert max(levels) == 2 ** params["bits"] - (1 if symmetric else 0)
