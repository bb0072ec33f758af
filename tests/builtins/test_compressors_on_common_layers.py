"""Built-in compressors, the artifact and the conformance suite on your own modules.

Two models that no built-in family builds: a residual CNN with grouped and
depthwise convolutions, batch norms and a layer norm; and a token model with
an embedding, 1-D (depthwise) convolutions, a 1-D batch norm and a layer norm.
"""

from __future__ import annotations

import pytest
import torch
from fedsearch_builtins.distillation import SoftTargetDistillation
from fedsearch_builtins.lowrank import LowRankFactorization
from fedsearch_builtins.pruning import MagnitudePruning
from fedsearch_builtins.quantization import (
    HalfPrecision,
    MixedPrecisionQuantization,
    UniformQuantization,
)
from fedsearch_builtins.structured import StructuredPruning
from torch import nn

from fedsearch import CompressionContext, ConfigError, describe_artifact
from fedsearch.testing import CompressorTestCase


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.grouped = nn.Conv2d(channels, channels, 3, padding=1, groups=2, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.grouped(x)))
        return torch.relu(x + self.bn2(self.depthwise(y)))


def residual_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Conv, BN, a residual block of grouped and depthwise convs, LayerNorm, Linear."""
    return nn.Sequential(
        nn.Conv2d(input_shape[0], 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        Residual(8),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.LayerNorm(32),
        nn.Linear(32, 16),
        nn.ReLU(),
        nn.Linear(16, num_classes),
    )


class TokenModel(nn.Module):
    """Embedding, Conv1d + BatchNorm1d, a depthwise Conv1d with a skip, LayerNorm, Linear."""

    vocabulary = 12

    def __init__(self, num_classes: int, width: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(self.vocabulary, width)
        self.conv = nn.Conv1d(width, width, 3, padding=1)
        self.norm = nn.BatchNorm1d(width)
        self.depthwise = nn.Conv1d(width, width, 3, padding=1, groups=width)
        self.layer_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = (x.abs() * 4).long().clamp(max=self.vocabulary - 1)  # token ids from the data
        hidden = self.embed(tokens).transpose(1, 2)
        hidden = torch.relu(self.norm(self.conv(hidden)))
        hidden = self.depthwise(hidden) + hidden
        return self.head(self.layer_norm(hidden.mean(2)))


def token_model(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A :class:`TokenModel` over sequences of ``input_shape[0]`` tokens."""
    return TokenModel(num_classes)


class OnResidualCNN(CompressorTestCase):
    model_factory = residual_cnn
    input_shape = (1, 8, 8)


class OnTokens(CompressorTestCase):
    model_factory = token_model
    input_shape = (10,)


CASES = {
    "Magnitude": (MagnitudePruning, {"sparsity": 0.6, "start_fraction": 0.25}),
    "UniformPerChannel": (UniformQuantization, {"bits": 4, "scheme": "asymmetric",
                                                "granularity": "channel"}),
    "LowRank": (LowRankFactorization, {"rank_ratio": 0.5, "start_fraction": 0.25}),
}  # fmt: skip
for model_case in (OnResidualCNN, OnTokens):
    for case_name, (compressor, params) in CASES.items():
        name = f"Test{case_name}{model_case.__name__}"
        globals()[name] = type(name, (model_case,), {"compressor_class": compressor,
                                                     "params": params})  # fmt: skip


class TestMixedPrecisionOnTokens(OnTokens):
    compressor_class = MixedPrecisionQuantization
    params = {"bits_first": 8, "bits_hidden": 3, "bits_last": 6}


class TestBFloat16OnResidualCNN(OnResidualCNN):
    compressor_class = HalfPrecision
    params = {"dtype": "bfloat16"}


class TestSoftTargetsOnResidualCNN(OnResidualCNN):
    compressor_class = SoftTargetDistillation
    teacher_architecture = ("mlp", {"widths": [16]})


@pytest.mark.parametrize("model_case", [OnResidualCNN, OnTokens])
def test_quantizer_stores_layer_weights_as_codes_and_norms_as_float32(model_case):
    case = type("Case", (model_case,), {"compressor_class": UniformQuantization,
                                        "params": {"bits": 5}})()  # fmt: skip
    compressor, model, weights, _ = case.run_lifecycle()
    reports = {report.name: report for report in describe_artifact(case.artifact(
        compressor, model, weights))}  # fmt: skip
    weighted = {name for name, param in model.named_parameters() if param.ndim >= 2}
    assert weighted and all(reports[name].bits == 5 for name in weighted)
    others = set(model.state_dict()) - weighted
    assert any("norm" in name or "bn" in name for name in others)
    assert all(reports[name].kind == "float32" for name in others)


def test_structured_pruning_refuses_a_branching_model_with_a_clear_error():
    model = residual_cnn((1, 8, 8), 3)
    with pytest.raises(ConfigError, match="use unstructured pruning"):
        StructuredPruning().setup(CompressionContext(model, 4, None))
