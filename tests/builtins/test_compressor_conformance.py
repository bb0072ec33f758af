"""Every built-in compressor passes the public conformance suite."""

from __future__ import annotations

from fedsearch_builtins.distillation import SoftTargetDistillation
from fedsearch_builtins.feature_distillation import AttentionTransfer, FitNetsDistillation
from fedsearch_builtins.lowrank import LowRankFactorization
from fedsearch_builtins.pruning import MagnitudePruning
from fedsearch_builtins.quantization import (
    HalfPrecision,
    MixedPrecisionQuantization,
    UniformQuantization,
)
from fedsearch_builtins.structured import StructuredPruning

from fedsearch.testing import CompressorTestCase

MLP = {"architecture": "mlp", "architecture_params": {"widths": [12, 8]}, "input_shape": (16,)}


class TestMagnitudeGlobalOneShot(CompressorTestCase):
    compressor_class = MagnitudePruning
    params = {"sparsity": 0.7, "start_fraction": 0.25}


class TestMagnitudeLayerGradual(CompressorTestCase):
    compressor_class = MagnitudePruning
    params = {"sparsity": 0.6, "scope": "layer", "schedule": "gradual", "start_fraction": 0.0,
              "end_fraction": 0.75, "sparsity_last": 0.3}  # fmt: skip


class TestStructuredFilters(CompressorTestCase):
    compressor_class = StructuredPruning
    params = {"sparsity": 0.5, "start_fraction": 0.25}


class TestStructuredChannelsL2(CompressorTestCase):
    compressor_class = StructuredPruning
    params = {"sparsity": 0.5, "criterion": "l2", "method": "channel", "start_fraction": 0.5}


class TestStructuredNeurons(CompressorTestCase):
    compressor_class = StructuredPruning
    params = {"sparsity": 0.5, "start_fraction": 0.0}
    architecture, architecture_params, input_shape = MLP.values()


class TestUniformSymmetricQAT(CompressorTestCase):
    compressor_class = UniformQuantization
    params = {"bits": 4}


class TestUniformAsymmetricPerChannelPTQ(CompressorTestCase):
    compressor_class = UniformQuantization
    params = {"bits": 3, "scheme": "asymmetric", "granularity": "channel", "mode": "ptq"}


class TestMixedPrecision(CompressorTestCase):
    compressor_class = MixedPrecisionQuantization
    params = {"bits_first": 8, "bits_hidden": 2, "bits_last": 6}


class TestFloat16(CompressorTestCase):
    compressor_class = HalfPrecision
    params = {"dtype": "float16"}


class TestBFloat16(CompressorTestCase):
    compressor_class = HalfPrecision
    params = {"dtype": "bfloat16"}


class TestSoftTargets(CompressorTestCase):
    compressor_class = SoftTargetDistillation
    teacher_architecture = ("mlp", {"widths": [32]})


class TestFitNets(CompressorTestCase):
    compressor_class = FitNetsDistillation
    teacher_architecture = ("cnn", {"channels": [8, 8], "hidden": 32})


class TestFitNetsMLP(CompressorTestCase):
    compressor_class = FitNetsDistillation
    architecture, architecture_params, input_shape = MLP.values()
    teacher_architecture = ("mlp", {"widths": [32, 24]})


class TestAttentionTransfer(CompressorTestCase):
    compressor_class = AttentionTransfer
    teacher_architecture = ("cnn", {"channels": [8, 8], "hidden": 32})


class TestLowRankFlattened(CompressorTestCase):
    compressor_class = LowRankFactorization
    params = {"rank_ratio": 0.25, "start_fraction": 0.25}
    architecture_params = {"channels": [8, 8], "hidden": 32}


class TestLowRankTucker(CompressorTestCase):
    compressor_class = LowRankFactorization
    params = {"rank_ratio": 0.25, "conv_mode": "tucker", "start_fraction": 0.5}
    architecture_params = {"channels": [8, 8], "hidden": 32}


class TestUniformAsymmetricQAT(CompressorTestCase):
    compressor_class = UniformQuantization
    params = {"bits": 4, "scheme": "asymmetric"}
    architecture, architecture_params, input_shape = MLP.values()


class TestUniformAsymmetricPerChannelQAT(CompressorTestCase):
    compressor_class = UniformQuantization
    params = {"bits": 3, "scheme": "asymmetric", "granularity": "channel"}
