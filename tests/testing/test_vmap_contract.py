"""The conformance suite fails a compressor that is not vmap-safe, naming vmap and the fix."""

from __future__ import annotations

import pytest

from fedsearch import CompressionContext, Compressor, StepContext, Weights
from fedsearch.testing import CompressorTestCase


class ThresholdPruning(Compressor):
    """Zeroes small weights by boolean-mask assignment: fine sequentially, not under vmap."""

    name = "threshold"
    stage = "prune"

    def setup(self, context: CompressionContext) -> None:
        self.names = [name for name, p in context.model.named_parameters() if p.ndim >= 2]

    def transform_parameters(self, params: Weights, step: StepContext) -> Weights:
        out = dict(params)
        for name in self.names:
            weight = params[name].clone()
            weight[weight.abs() < 0.05] = 0.0  # boolean-mask indexing
            out[name] = weight
        return out


class SequentialThresholdPruning(ThresholdPruning):
    vectorizable = False


class NotVmapSafeSuite(CompressorTestCase):  # not collected: its round test must fail
    compressor_class = ThresholdPruning
    architecture, architecture_params, input_shape = "mlp", {"widths": [8]}, (6,)


class TestDeclaredSequential(NotVmapSafeSuite):
    """Declared ``vectorizable = False``: the whole suite passes, vectorized is refused."""

    compressor_class = SequentialThresholdPruning


def test_the_suite_fails_a_compressor_that_breaks_under_vmap():
    with pytest.raises(pytest.fail.Exception) as failure:
        NotVmapSafeSuite().test_trains_in_real_rounds_on_both_execution_paths()
    message = str(failure.value)
    assert "not vmap-safe" in message and "boolean mask" in message
    assert "vectorizable = False" in message
