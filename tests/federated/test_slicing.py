"""Width-nested sub-models: slice plans of the built-in families and overlapping aggregation."""

from __future__ import annotations

import pytest
import torch

from fedsearch.federated._slicing import SliceAggregator, slice_plan
from fedsearch.host import get_registry

FAMILIES = [
    ("mlp", {"widths": [32, 16]}, (1, 8, 8)),
    ("cnn", {"channels": [8, 16], "kernel_size": 3, "hidden": 32}, (1, 8, 8)),
    ("cnn", {"channels": [6, 16], "kernel_size": 5, "hidden": 120}, (1, 28, 28)),
    ("dscnn", {"depth": 2, "width_multiplier": 0.5}, (1, 8, 8)),
]


def _shapes(model):
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def _pair(name, params, shape, ratio):
    registry = get_registry()
    full = registry.create("architecture", name, params)
    sub = registry.create(
        "architecture", name, {**full.params.model_dump(mode="json"), **full.width_scaled(ratio)}
    )
    torch.manual_seed(0)
    return full.build(shape, 10), sub.build(shape, 10)


@pytest.mark.parametrize(("name", "params", "shape"), FAMILIES)
@pytest.mark.parametrize("offset", [0, 3])
def test_slice_computes_what_the_global_model_computes_with_the_rest_zeroed(
    name, params, shape, offset
):
    full, sub = _pair(name, params, shape, 0.5)
    plan = slice_plan(_shapes(full), _shapes(sub), offset=offset)
    weights = {k: v.detach().clone() for k, v in full.state_dict().items()}
    for key, value in weights.items():  # make every bias count, then zero the outside
        if key.endswith("bias"):
            value.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    kept = plan.take(weights)
    zeroed = {k: torch.zeros_like(v) for k, v in weights.items()}
    for key, value in kept.items():
        zeroed[key].index_put_(plan.grid(key, tuple(weights[key].shape)), value)
    full.load_state_dict(zeroed)
    sub.load_state_dict(kept)
    inputs = torch.randn(5, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(sub(inputs), full(inputs), rtol=1e-5, atol=1e-5)
    sliced = sum(v.numel() for v in kept.values())
    assert 0 < sliced < sum(v.numel() for v in weights.values())


def test_rolling_window_wraps_around_and_keeps_whole_channels_after_flatten():
    plan = slice_plan({"c": (4, 1, 3, 3), "l": (2, 4 * 9)}, {"c": (2, 1, 3, 3), "l": (2, 2 * 9)}, 3)
    assert plan.index["c"][0].tolist() == [3, 0]
    assert plan.index["l"][1].tolist() == [*range(27, 36), *range(0, 9)]


def test_a_larger_sub_model_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        slice_plan({"w": (4, 4)}, {"w": (5, 4)})


def test_each_coordinate_is_averaged_over_the_clients_that_trained_it():
    weights = {"w": torch.zeros(4)}
    small = slice_plan({"w": (4,)}, {"w": (2,)})
    large = slice_plan({"w": (4,)}, {"w": (4,)})
    aggregator = SliceAggregator(weights)
    aggregator.add({"w": torch.full((2,), 3.0)}, small, examples=10, steps=1)
    aggregator.add({"w": torch.full((4,), 1.0)}, large, examples=30, steps=1)
    # shared coordinates: (10 * 3 + 30 * 1) / 40 = 1.5; the large client's own: 1.0
    assert aggregator.result()["w"].tolist() == [1.5, 1.5, 1.0, 1.0]


def test_untrained_coordinates_keep_their_value():
    weights = {"w": torch.arange(4.0)}
    aggregator = SliceAggregator(weights)
    aggregator.add({"w": torch.ones(2)}, slice_plan({"w": (4,)}, {"w": (2,)}), 5, 1)
    assert aggregator.result()["w"].tolist() == [1.0, 2.0, 2.0, 3.0]


def test_fednova_normalises_partial_work_and_equals_fedavg_when_steps_are_equal():
    weights = {"w": torch.zeros(1)}
    plan = slice_plan({"w": (1,)}, {"w": (1,)})
    equal, plain = SliceAggregator(weights, normalise=True), SliceAggregator(weights)
    for aggregator in (equal, plain):
        aggregator.add({"w": torch.tensor([4.0])}, plan, 10, 4)
        aggregator.add({"w": torch.tensor([2.0])}, plan, 30, 4)
    torch.testing.assert_close(equal.result()["w"], plain.result()["w"])
    nova = SliceAggregator(weights, normalise=True)
    nova.add({"w": torch.tensor([4.0])}, plan, 10, 4)  # 1.0 per step
    nova.add({"w": torch.tensor([1.0])}, plan, 10, 1)  # 1.0 per step, stopped early
    # per-step directions agree (1.0), rescaled by the mean step count (2.5)
    assert nova.result()["w"].item() == pytest.approx(2.5)
