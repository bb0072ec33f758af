"""Every built-in codec passes the public conformance suite, with the bound its docstring states."""

from __future__ import annotations

import torch
from fedsearch_builtins.codecs import (
    BFloat16Codec,
    ErrorFeedbackCodec,
    Float16Codec,
    Float32Codec,
    QsgdCodec,
    RandomKCodec,
    SignCodec,
    SparseTernaryCodec,
    TopKCodec,
)

from fedsearch.testing import CodecTestCase


class TestFloat32(CodecTestCase):
    codec_class = Float32Codec
    lossless = True


class TestFloat16(CodecTestCase):
    codec_class = Float16Codec

    def max_error(self, values):
        return 2**-11 * values.abs() + 2**-25


class TestBFloat16(CodecTestCase):
    codec_class = BFloat16Codec

    def max_error(self, values):
        return 2**-8 * values.abs() + 1e-38


class TestTopK(CodecTestCase):
    codec_class = TopKCodec
    params = {"fraction": 0.1}

    def max_error(self, values):
        return values.abs()  # kept values exact, the others 0


class TestRandomK(CodecTestCase):
    codec_class = RandomKCodec
    params = {"fraction": 0.2, "seed": 3}

    def max_error(self, values):
        return values.abs()


class TestSparseTernary(CodecTestCase):
    codec_class = SparseTernaryCodec
    params = {"fraction": 0.1}


class TestQsgd(CodecTestCase):
    codec_class = QsgdCodec
    params = {"levels": 4}

    def max_error(self, values):
        return float(values.float().double().norm()) / 4 * (1 + 1e-6)


class TestQsgdMaxNorm(CodecTestCase):
    codec_class = QsgdCodec
    params = {"levels": 2, "norm": "max"}

    def max_error(self, values):
        return float(values.float().abs().max()) / 2 * (1 + 1e-6)


class TestSign(CodecTestCase):
    codec_class = SignCodec


class TestTopKThenQsgd(CodecTestCase):
    codec_class = TopKCodec
    params = {"fraction": 0.2}
    inner = [(QsgdCodec, {"levels": 8})]


class TestErrorFeedbackTopK(CodecTestCase):
    codec_class = ErrorFeedbackCodec
    inner = [(TopKCodec, {"fraction": 0.1})]

    def max_error(self, values):
        return values.abs()  # a fresh residual: what top-k promises


def test_the_bounds_above_are_not_vacuous():
    """A lossy codec the suite checks really loses something on a real-sized update."""
    values = {"w": torch.randn(200, generator=torch.Generator().manual_seed(0))}
    for codec in (Float16Codec(), BFloat16Codec(), QsgdCodec()):
        decoded = codec.decode(codec.encode(values), like=values)["w"]
        assert not torch.equal(decoded, values["w"])
