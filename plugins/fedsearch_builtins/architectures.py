"""Student families: MLP, LeNet-like CNN and MobileNet-like depthwise-separable CNN."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field, model_validator
from torch import nn

from fedsearch import (
    Architecture,
    ComponentParams,
    FactoryArchitecture,
    FromTeacherArchitecture,
    Registrar,
    SearchChoices,
    SearchPerLayer,
    SearchRange,
    hookimpl,
)

Width = Annotated[int, Field(ge=1, le=8192)]


def _per_layer_defaults(data: Any, count: str, values: str, default: int) -> Any:
    """Derive the layer count from an explicit list, or fill the list from the count."""
    if not isinstance(data, dict):
        return data
    if values in data and count not in data and isinstance(data[values], list):
        return {**data, count: len(data[values])}
    if count in data and values not in data and isinstance(data[count], int):
        return {**data, values: [default] * data[count]}
    return data


def _check_length(values: list[int], count: int, names: str) -> None:
    if len(values) != count:
        raise ValueError(f"{names} has {len(values)} entries but depth is {count}; give one each")


class MLPParams(ComponentParams):
    """Knobs of the MLP family: the number of hidden layers and each layer's width.

    Give ``widths`` alone (``[300, 100]``) and ``depth`` follows from it; give
    ``depth`` alone and every layer is 64 wide.
    """

    depth: Annotated[int, Field(ge=1, le=4), SearchRange(1, 4)] = 2
    widths: Annotated[
        list[Width], SearchPerLayer(SearchChoices([16, 32, 64, 128, 256]), count="depth")
    ] = [64, 64]

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return _per_layer_defaults(data, "depth", "widths", 64)

    @model_validator(mode="after")
    def _lengths(self) -> MLPParams:
        _check_length(self.widths, self.depth, "widths")
        return self


class MLP(Architecture):
    """Fully connected network: flatten, then one Linear+ReLU per hidden width."""

    name = "mlp"
    description = "multilayer perceptron (depth 1-4, per-layer widths)"
    Params = MLPParams

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """Flatten, hidden Linear+ReLU layers, then a Linear classifier."""
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(input_shape)
        for width in self.params.widths:
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, num_classes))
        return nn.Sequential(*layers)

    def width_scaled(self, ratio: float) -> dict[str, Any]:
        """Every hidden width times ``ratio`` (at least 1)."""
        return {"widths": [scaled_width(width, ratio) for width in self.params.widths]}


def scaled_width(width: int, ratio: float) -> int:
    """``width * ratio`` rounded up, at least 1 (a tier's share of a hidden layer)."""
    return max(1, math.ceil(width * ratio - 1e-9))


def _image_shape(family: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(
            f"the {family} family needs (channels, height, width) inputs, got {input_shape}"
        )
    channels, height, width = input_shape
    return channels, height, width


def lenet_block_plan(size: int, kernel_size: int) -> tuple[int, int, bool]:
    """Padding, output size and pooling of one LeNet block on a ``size``-wide input.

    The convolution is ``valid`` (no padding, as in LeNet-5) when that leaves
    at least a 4-wide map, else ``same``; a 2x2 max-pool follows when the map
    is at least 2 wide.

    Returns:
        ``(padding, size after the block, whether it pools)``.
    """
    padding = 0 if size - kernel_size + 1 >= 4 else kernel_size // 2
    size = size + 2 * padding - kernel_size + 1
    pools = size >= 2
    return padding, size // 2 if pools else size, pools


def _block_output(size: int, kernel_size: int, padding: int, pools: bool) -> int:
    size = size + 2 * padding - kernel_size + 1
    return size // 2 if pools else size


class CNNParams(ComponentParams):
    """Knobs of the LeNet-like CNN: conv blocks, channels per block, kernel, dense width."""

    depth: Annotated[int, Field(ge=1, le=4), SearchRange(1, 3)] = 2
    channels: Annotated[
        list[Annotated[int, Field(ge=1, le=1024)]],
        SearchPerLayer(SearchChoices([4, 8, 16, 32]), count="depth"),
    ] = [6, 16]
    kernel_size: Annotated[int, Field(ge=1, le=11), SearchChoices([3, 5])] = 5
    hidden: Annotated[int, Field(ge=1, le=4096), SearchChoices([32, 64, 128])] = 120

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return _per_layer_defaults(data, "depth", "channels", 16)

    @model_validator(mode="after")
    def _lengths(self) -> CNNParams:
        _check_length(self.channels, self.depth, "channels")
        return self


class CNN(Architecture):
    """LeNet-like CNN: ``depth`` conv+ReLU+max-pool blocks, one dense layer, classifier.

    Convolutions are unpadded (LeNet-5 style) where the input is large enough
    and padded where it is not, so the same knobs build for 8x8 digits and
    32x32 CIFAR images. ``channels=[6, 16]``, ``kernel_size=5`` on 1x32x32 is
    LeNet-5's convolutional part.
    """

    name = "cnn"
    description = "LeNet-like CNN (depth, per-block channels, kernel size, hidden width)"
    Params = CNNParams

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """Conv blocks, flatten, hidden dense layer, classifier."""
        params: CNNParams = self.params
        in_channels, height, width = _image_shape(self.name, input_shape)
        layers: list[nn.Module] = []
        for channels in params.channels:
            padding, _, pools = lenet_block_plan(min(height, width), params.kernel_size)
            height = _block_output(height, params.kernel_size, padding, pools)
            width = _block_output(width, params.kernel_size, padding, pools)
            layers += [
                nn.Conv2d(in_channels, channels, params.kernel_size, padding=padding),
                nn.ReLU(),
            ]
            if pools:
                layers.append(nn.MaxPool2d(2))
            in_channels = channels
        layers += [
            nn.Flatten(),
            nn.Linear(in_channels * height * width, params.hidden),
            nn.ReLU(),
            nn.Linear(params.hidden, num_classes),
        ]
        return nn.Sequential(*layers)

    def width_scaled(self, ratio: float) -> dict[str, Any]:
        """Every block's channels and the dense width times ``ratio`` (at least 1)."""
        params: CNNParams = self.params
        return {
            "channels": [scaled_width(channels, ratio) for channels in params.channels],
            "kernel_size": params.kernel_size,
            "hidden": scaled_width(params.hidden, ratio),
        }


DSCNN_BASE_CHANNELS = (32, 64, 128, 128, 256)
"""Stem and block output channels at width multiplier 1 (MobileNet v1's first layers)."""
DSCNN_STRIDES = (2, 1, 2, 1)
"""Stride of each depthwise-separable block (taken only while the map is >= 4 wide)."""


def scaled_channels(base: int, multiplier: float) -> int:
    """``base * multiplier`` rounded to a multiple of 4, at least 4 (MobileNet's rule, /4)."""
    return max(4, int(base * multiplier + 2) // 4 * 4)


class DSCNNParams(ComponentParams):
    """Knobs of the depthwise-separable CNN: number of blocks and a width multiplier."""

    depth: Annotated[int, Field(ge=1, le=4), SearchRange(1, 4)] = 2
    width_multiplier: Annotated[
        float, Field(gt=0.0, le=4.0), SearchChoices([0.125, 0.25, 0.5, 1.0])
    ] = 0.5


class DSCNN(Architecture):
    """MobileNet-like CNN: a 3x3 stem, ``depth`` depthwise-separable blocks, global pooling.

    Each block is a 3x3 depthwise convolution and a 1x1 pointwise convolution,
    each followed by ReLU (no batch norm: its running statistics do not average
    well across clients; He initialisation keeps it trainable instead).
    Channels are MobileNet v1's (32, 64, 128, 128, 256) scaled by
    ``width_multiplier``.
    """

    name = "dscnn"
    description = "MobileNet-like depthwise-separable CNN (depth, width multiplier)"
    Params = DSCNNParams

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """Stem, depthwise-separable blocks, global average pool, classifier."""
        params: DSCNNParams = self.params
        in_channels, height, width = _image_shape(self.name, input_shape)
        channels = [scaled_channels(base, params.width_multiplier) for base in DSCNN_BASE_CHANNELS]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, padding=1), nn.ReLU()]
        size = min(height, width)
        for block in range(params.depth):
            stride = DSCNN_STRIDES[block] if size >= 4 else 1
            size = (size - 1) // stride + 1
            c_in, c_out = channels[block], channels[block + 1]
            layers += [
                nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in),
                nn.ReLU(),
                nn.Conv2d(c_in, c_out, 1),
                nn.ReLU(),
            ]
        layers += [
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels[params.depth], num_classes),
        ]
        model = nn.Sequential(*layers)
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                # He initialisation: without batch norm, PyTorch's default init leaves
                # this depth of ReLU layers stuck at chance accuracy.
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        return model

    def width_scaled(self, ratio: float) -> dict[str, Any]:
        """The width multiplier times ``ratio`` (channels stay multiples of 4, at least 4)."""
        params: DSCNNParams = self.params
        return {"depth": params.depth, "width_multiplier": params.width_multiplier * ratio}


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the MLP, CNN and DS-CNN families, ``factory`` and ``from_teacher``."""
    register.architecture(MLP)
    register.architecture(CNN)
    register.architecture(DSCNN)
    register.architecture(FactoryArchitecture)  # your own model, bound by the study file
    register.architecture(FromTeacherArchitecture)  # the teacher, built by the trial
