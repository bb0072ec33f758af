"""The example's stateful compressor and middleware pass fedsearch's conformance suites."""

from __future__ import annotations

from fedsearch_random_pruning import GaussianNoise, LogitAdjustment

from fedsearch.testing import CompressorTestCase, MiddlewareTestCase


class TestLogitAdjustment(CompressorTestCase):
    compressor_class = LogitAdjustment
    params = {"tau": 1.0}
    architecture = "mlp"
    architecture_params = {"widths": [12]}
    input_shape = (10,)


class TestGaussianNoise(MiddlewareTestCase):
    middleware_class = GaussianNoise
    params = {"sigma": 0.01}
