"""Built-in student families pass the architecture conformance suite."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from fedsearch_builtins.architectures import CNN, DSCNN, MLP

from fedsearch import ConfigError
from fedsearch.testing import ArchitectureTestCase


def dense(features_in: int, features_out: int) -> int:
    return features_in * features_out + features_out


class TestMLP(ArchitectureTestCase):
    architecture = MLP
    param_cases = [{}, {"depth": 1, "widths": [16]}, {"widths": [300, 100]}, {"depth": 4}]

    def expected_parameters(self, params, input_shape, num_classes):
        sizes = [math.prod(input_shape), *params.widths, num_classes]
        return sum(dense(a, b) for a, b in itertools.pairwise(sizes))


def lenet_size(size: int, kernel: int) -> int:
    """Valid convolution when it leaves >= 4 pixels, else same; then 2x2 pooling if possible."""
    size = size - kernel + 1 if size - kernel + 1 >= 4 else size
    return size // 2 if size >= 2 else size


class TestCNN(ArchitectureTestCase):
    architecture = CNN
    param_cases = [
        {},
        {"depth": 1, "channels": [4], "kernel_size": 3, "hidden": 32},
        {"channels": [8, 16, 32], "kernel_size": 3, "hidden": 64},
        {"channels": [4, 4, 4, 4], "kernel_size": 5},
    ]

    def expected_parameters(self, params, input_shape, num_classes):
        channels, height, width = input_shape
        k = params.kernel_size
        total = 0
        for out in params.channels:
            total += channels * out * k * k + out
            height, width, channels = lenet_size(height, k), lenet_size(width, k), out
        return (
            total
            + dense(channels * height * width, params.hidden)
            + dense(params.hidden, num_classes)
        )


DSCNN_CHANNELS = {
    0.125: (4, 8, 16, 16, 32),
    0.25: (8, 16, 32, 32, 64),
    0.5: (16, 32, 64, 64, 128),
    1.0: (32, 64, 128, 128, 256),
}


class TestDSCNN(ArchitectureTestCase):
    architecture = DSCNN
    param_cases = [
        {},
        {"depth": 1, "width_multiplier": 0.125},
        {"depth": 3, "width_multiplier": 0.25},
        {"depth": 4, "width_multiplier": 1.0},
    ]

    def expected_parameters(self, params, input_shape, num_classes):
        channels = DSCNN_CHANNELS[params.width_multiplier]
        total = input_shape[0] * channels[0] * 9 + channels[0]
        for c_in, c_out in itertools.pairwise(channels[: params.depth + 1]):
            total += c_in * 9 + c_in + dense(c_in, c_out)  # depthwise 3x3, then pointwise 1x1
        return total + dense(channels[params.depth], num_classes)


def test_lenet_300_100_has_the_published_parameter_count(registry):
    model = registry.create("architecture", "mlp", {"widths": [300, 100]}).build((1, 28, 28), 10)
    assert sum(p.numel() for p in model.parameters()) == 266_610  # Han et al. 2015, Table 1


def test_cnn_defaults_are_lenet5_convolutions_on_32x32(registry):
    model = registry.create("architecture", "cnn").build((1, 32, 32), 10)
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (6, (5, 5), (0, 0)),
        (16, (5, 5), (0, 0)),
    ]
    flatten = model[: [type(m) for m in model].index(torch.nn.Flatten)]
    assert flatten(torch.zeros(1, 1, 32, 32)).shape == (1, 16, 5, 5)  # LeNet-5's C5 input


def test_dscnn_blocks_are_depthwise_then_pointwise(registry):
    model = registry.create("architecture", "dscnn", {"depth": 2}).build((3, 32, 32), 10)
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    assert [(c.groups, c.kernel_size) for c in convs] == [
        (1, (3, 3)),
        (16, (3, 3)),
        (1, (1, 1)),
        (32, (3, 3)),
        (1, (1, 1)),
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"depth": 2, "widths": [8]}, "widths has 1 entries but depth is 2"),
        ({"depth": 5}, "less than or equal to 4"),
    ],
)
def test_mlp_knobs_are_checked(registry, params, message):
    with pytest.raises(ConfigError, match=message):
        registry.create("architecture", "mlp", params)


def test_depth_alone_or_widths_alone(registry):
    assert registry.create("architecture", "mlp", {"depth": 3}).params.widths == [64, 64, 64]
    assert registry.create("architecture", "mlp", {"widths": [7, 5]}).params.depth == 2
