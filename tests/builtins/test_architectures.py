"""Built-in student families build working models for the dataset shapes."""

from __future__ import annotations

import pytest
import torch

SHAPES = [((1, 8, 8), 10), ((1, 28, 28), 10), ((1, 28, 28), 62), ((3, 32, 32), 10)]


@pytest.mark.parametrize(("input_shape", "num_classes"), SHAPES)
@pytest.mark.parametrize(
    ("name", "params"),
    [("mlp", {"depth": 2, "width": 16}), ("mlp", {"widths": [300, 100]}), ("cnn", {"channels": 4})],
)
def test_family_maps_inputs_to_logits(registry, name, params, input_shape, num_classes):
    model = registry.create("architecture", name, params).build(input_shape, num_classes)
    assert model(torch.zeros(3, *input_shape)).shape == (3, num_classes)


def test_lenet_300_100_has_the_published_parameter_count(registry):
    model = registry.create("architecture", "mlp", {"widths": [300, 100]}).build((1, 28, 28), 10)
    assert sum(p.numel() for p in model.parameters()) == 266_610  # Han et al. 2015, Table 1


def test_mlp_depth_and_width(registry):
    model = registry.create("architecture", "mlp", {"depth": 3, "width": 7}).build((1, 8, 8), 10)
    linear = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [layer.out_features for layer in linear] == [7, 7, 7, 10]
