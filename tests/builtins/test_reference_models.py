"""The fixed reference models have exactly the published architectures."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("mnist_2nn", 199_210),
        ("fedavg_cnn", 1_663_370),
        ("lenet_300_100", 266_610),
        ("lenet5", 431_080),
    ],
)
def test_reference_models_have_the_published_sizes(registry, name, parameters):
    model = registry.create("architecture", name).build((1, 28, 28), 10)
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_reference_models_take_shape_and_classes_from_the_dataset(registry):
    cnn = registry.create("architecture", "fedavg_cnn").build((3, 32, 32), 62)
    assert cnn(torch.zeros(2, 3, 32, 32)).shape == (2, 62)
    mlp = registry.create("architecture", "mnist_2nn").build((1, 8, 8), 10)
    assert mlp[1].in_features == 64
    with pytest.raises(ValueError, match="lenet5 needs"):
        registry.create("architecture", "lenet5").build((1, 8, 8), 10)
