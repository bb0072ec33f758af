"""``ArchitectureTestCase``: what every student family must do."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pytest
import torch
from pydantic import ValidationError

from fedsearch.components import Architecture, SearchChoices, SearchRange, search_hint
from fedsearch.federated._slicing import slice_plan

DATASET_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "femnist": ((1, 28, 28), 62),
    "cifar10": ((3, 32, 32), 10),
}
"""Example shape and class count of the datasets every family must build for."""


class ArchitectureTestCase:
    """Conformance tests for an ``Architecture`` plugin, collected by pytest.

    Subclass it in a test module under a name starting with ``Test``, set
    ``architecture`` and ``param_cases``, and implement ``expected_parameters``
    with the parameter count your family's knobs imply, written out by hand::

        from fedsearch.testing import ArchitectureTestCase

        class TestMyNet(ArchitectureTestCase):
            architecture = MyNet
            param_cases = [{}, {"width": 8}, {"width": 512}]

            def expected_parameters(self, params, input_shape, num_classes):
                return math.prod(input_shape) * params.width + ...

    Every case is built for the digits (1x8x8, 10 classes), MNIST (1x28x28,
    10), FEMNIST (1x28x28, 62) and CIFAR-10 (3x32x32, 10) shapes, on fake
    inputs of those shapes (no data is loaded).
    """

    architecture: ClassVar[type[Architecture]]
    param_cases: ClassVar[list[dict[str, Any]]] = [{}]
    """Params to build with; the defaults (``{}``) are always worth a case."""

    def expected_parameters(
        self, params: Any, input_shape: tuple[int, ...], num_classes: int
    ) -> int:
        """The number of weights ``params`` should give, computed independently of ``build``."""
        raise NotImplementedError(
            f"{type(self).__name__}: implement expected_parameters for {self.architecture.name!r}"
        )

    def build(
        self, params: dict[str, Any], input_shape: tuple[int, ...], num_classes: int, seed: int = 0
    ) -> torch.nn.Module:
        """Build the family with ``params`` after seeding torch."""
        architecture = self.architecture(self.architecture.Params.model_validate(params))
        torch.manual_seed(seed)
        return architecture.build(input_shape, num_classes)

    @pytest.mark.parametrize("dataset", sorted(DATASET_SHAPES))
    def test_maps_a_batch_to_finite_logits(self, dataset: str) -> None:
        """Each case builds for the dataset's shape and maps ``(N, *shape)`` to ``(N, classes)``."""
        input_shape, num_classes = DATASET_SHAPES[dataset]
        for params in self.param_cases:
            model = self.build(params, input_shape, num_classes)
            logits = model(torch.randn(3, *input_shape))
            assert logits.shape == (3, num_classes), params
            assert torch.isfinite(logits).all(), params

    @pytest.mark.parametrize("dataset", sorted(DATASET_SHAPES))
    def test_parameter_count_follows_the_knobs(self, dataset: str) -> None:
        """The built model has exactly the parameters ``expected_parameters`` says."""
        input_shape, num_classes = DATASET_SHAPES[dataset]
        for params in self.param_cases:
            model = self.build(params, input_shape, num_classes)
            validated = self.architecture.Params.model_validate(params)
            expected = self.expected_parameters(validated, input_shape, num_classes)
            assert sum(p.numel() for p in model.parameters()) == expected, params

    def test_same_seed_same_model_other_seed_other_model(self) -> None:
        """Weights and outputs depend only on the torch seed."""
        input_shape, num_classes = DATASET_SHAPES["mnist"]
        inputs = torch.randn(2, *input_shape)
        for params in self.param_cases:
            first = self.build(params, input_shape, num_classes, seed=1)
            second = self.build(params, input_shape, num_classes, seed=1)
            other = self.build(params, input_shape, num_classes, seed=2)
            for (name, a), (_, b), (_, c) in zip(
                first.state_dict().items(),
                second.state_dict().items(),
                other.state_dict().items(),
                strict=True,
            ):
                assert torch.equal(a, b), (params, name)
                if name.endswith("weight"):
                    assert not torch.equal(a, c), (params, name)
            assert torch.equal(first(inputs), second(inputs)), params

    def test_every_parameter_gets_a_gradient(self) -> None:
        """No dead layers: a loss on the logits reaches every weight."""
        input_shape, num_classes = DATASET_SHAPES["digits"]
        for params in self.param_cases:
            model = self.build(params, input_shape, num_classes)
            loss = torch.nn.functional.cross_entropy(
                model(torch.randn(4, *input_shape)), torch.arange(4) % num_classes
            )
            loss.backward()
            for name, parameter in model.named_parameters():
                assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name

    def test_declared_search_ranges_are_valid_params(self) -> None:
        """Both ends of every declared search range, and every choice, validate."""
        params_model = self.architecture.Params
        for field in params_model.model_fields:
            hint = search_hint(params_model, field)
            count_field = getattr(hint, "count", None)
            values_hint = getattr(hint, "values", hint)
            if isinstance(values_hint, SearchChoices):
                values = list(values_hint.values)
            elif isinstance(values_hint, SearchRange):
                values = [values_hint.low, values_hint.high]
            else:
                continue
            for value in values:
                value = int(value) if _is_int_field(params_model, field, count_field) else value
                data = {field: value} if count_field is None else {count_field: 1, field: [value]}
                try:
                    params_model.model_validate(data)
                except ValidationError as error:  # pragma: no cover - the failure message
                    pytest.fail(f"{field}={value!r} is in the search range but invalid: {error}")

    @pytest.mark.parametrize("ratio", [0.5, 0.25])
    def test_width_scaled_sub_model_is_a_slice(self, ratio: float) -> None:
        """Tiers: the ``ratio``-wide sub-model computes what the full one does with the
        rest of its channels zeroed (families without ``width_scaled`` return None)."""
        for params in self.param_cases:
            architecture = self.architecture(self.architecture.Params.model_validate(params))
            scaled = architecture.width_scaled(ratio)
            if scaled is None:
                assert type(architecture).width_scaled is Architecture.width_scaled
                continue
            merged = {**architecture.params.model_dump(mode="json"), **scaled}
            for input_shape, num_classes in DATASET_SHAPES.values():
                full = self.build(params, input_shape, num_classes)
                sub = self.build(merged, input_shape, num_classes, seed=1)
                _check_slice(full, sub, input_shape)


def _check_slice(full: torch.nn.Module, sub: torch.nn.Module, input_shape: tuple[int, ...]) -> None:
    shapes = {name: tuple(t.shape) for name, t in full.state_dict().items()}
    plan = slice_plan(shapes, {name: tuple(t.shape) for name, t in sub.state_dict().items()})
    kept = plan.take(full.state_dict())
    zeroed = {name: torch.zeros_like(t) for name, t in full.state_dict().items()}
    for name, value in kept.items():
        zeroed[name].index_put_(plan.grid(name, shapes[name]), value)
    full.load_state_dict(zeroed)
    sub.load_state_dict(kept)
    inputs = torch.randn(3, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(sub.eval()(inputs), full.eval()(inputs), rtol=1e-4, atol=1e-5)


def _is_int_field(params_model: Any, field: str, count_field: str | None) -> bool:
    default = getattr(params_model(), field)
    if count_field is not None:
        default = default[0] if default else None
    return isinstance(default, int) and not isinstance(default, bool) and math.isfinite(default)
