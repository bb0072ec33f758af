"""Student families: a multilayer perceptron and a small LeNet-style CNN."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field
from torch import nn

from fedsearch import Architecture, ComponentParams, Registrar, SearchChoices, SearchRange, hookimpl


class MLPParams(ComponentParams):
    """Knobs of the MLP family."""

    depth: Annotated[int, Field(ge=1, le=8), SearchRange(1, 3)] = 2
    width: Annotated[int, Field(ge=1, le=8192), SearchChoices([16, 32, 64, 128, 256])] = 64
    widths: list[Annotated[int, Field(ge=1, le=8192)]] | None = None
    """Explicit hidden widths (e.g. ``[300, 100]``); overrides depth and width."""


class MLP(Architecture):
    """Fully connected network: flatten, then ``depth`` hidden layers with ReLU."""

    name = "mlp"
    description = "multilayer perceptron (depth, width)"
    Params = MLPParams

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """Flatten, hidden Linear+ReLU layers, then a Linear classifier."""
        params: MLPParams = self.params
        widths = params.widths if params.widths is not None else [params.width] * params.depth
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(input_shape)
        for width in widths:
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, num_classes))
        return nn.Sequential(*layers)


class SmallCNNParams(ComponentParams):
    """Knobs of the small CNN family."""

    channels: Annotated[int, Field(ge=1, le=512), SearchChoices([4, 8, 16, 32])] = 8
    hidden: Annotated[int, Field(ge=1, le=4096), SearchChoices([32, 64, 128])] = 64


class SmallCNN(Architecture):
    """LeNet-style CNN: two 3x3 conv + max-pool blocks (c and 2c channels), two dense layers."""

    name = "cnn"
    description = "LeNet-style CNN (channels, hidden)"
    Params = SmallCNNParams

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """Conv-ReLU-pool twice, then hidden dense layer and classifier."""
        params: SmallCNNParams = self.params
        if len(input_shape) != 3 or min(input_shape[1:]) < 4:
            raise ValueError(
                f"the cnn family needs (channels, height, width) >= 4x4 inputs, got {input_shape}"
            )
        in_channels, height, width = input_shape
        channels = params.channels
        return nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * (height // 4) * (width // 4), params.hidden),
            nn.ReLU(),
            nn.Linear(params.hidden, num_classes),
        )


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the MLP and CNN families."""
    register.architecture(MLP)
    register.architecture(SmallCNN)
