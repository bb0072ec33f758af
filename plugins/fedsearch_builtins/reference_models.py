"""Fixed reference models from the papers that benchmarks reproduce.

Unlike the tunable ``mlp`` and ``cnn`` families these have no knobs: each is
exactly the network of its paper (for MNIST-shaped input), so a benchmark can
name it and compare against the published figure. The input shape and class
count still come from the dataset.

- ``mnist_2nn``: McMahan et al. 2017, "2NN": 784-200-200-10 with ReLU (199,210 params).
- ``fedavg_cnn``: McMahan et al. 2017, "CNN": conv5x5(32, same) - pool - conv5x5(64, same)
  - pool - fc 512 - fc 10 (1,663,370 params).
- ``lenet_300_100``: Han et al. 2015/2016, LeNet-300-100: 784-300-100-10 (266,610 params).
- ``lenet5``: the Caffe LeNet-5 used by Han et al.: conv5x5(20) - pool - conv5x5(50) - pool
  - fc 500 - fc 10 (431,080 params).
"""

from __future__ import annotations

import math

from torch import nn

from fedsearch import Architecture, Registrar, hookimpl


def _mlp(input_shape: tuple[int, ...], hidden: tuple[int, ...], num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(input_shape)
    for width in hidden:
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def _image_shape(name: str, input_shape: tuple[int, ...], minimum: int) -> tuple[int, int, int]:
    if len(input_shape) != 3 or min(input_shape[1:]) < minimum:
        raise ValueError(
            f"{name} needs (channels, height, width) images of at least {minimum}x{minimum}, "
            f"got {input_shape}; choose an MLP such as mnist_2nn for this dataset"
        )
    channels, height, width = input_shape
    return channels, height, width


class MNIST2NN(Architecture):
    """McMahan et al. 2017 "2NN": two hidden layers of 200 units with ReLU."""

    name = "mnist_2nn"
    description = "McMahan et al. 2NN: 784-200-200-10 (fixed)"

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """Flatten, 200, 200, classifier."""
        return _mlp(input_shape, (200, 200), num_classes)


class FedAvgCNN(Architecture):
    """McMahan et al. 2017 "CNN": two 5x5 conv layers (32, 64) with 2x2 pooling, fc 512."""

    name = "fedavg_cnn"
    description = "McMahan et al. CNN: conv32-pool-conv64-pool-fc512-fc (fixed)"

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """'Same'-padded convolutions, so 28x28 becomes 7x7x64 before the dense layers."""
        channels, height, width = _image_shape(self.name, input_shape, 4)
        return nn.Sequential(
            nn.Conv2d(channels, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (height // 4) * (width // 4), 512),
            nn.ReLU(),
            nn.Linear(512, num_classes),
        )


class LeNet300100(Architecture):
    """LeNet-300-100 (LeCun et al. 1998, as pruned by Han et al.): 300 and 100 hidden units."""

    name = "lenet_300_100"
    description = "LeNet-300-100: 784-300-100-10 (fixed)"

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """Flatten, 300, 100, classifier."""
        return _mlp(input_shape, (300, 100), num_classes)


class LeNet5(Architecture):
    """Caffe's LeNet-5 (as in Han et al.): unpadded 5x5 convs of 20 and 50, fc 500."""

    name = "lenet5"
    description = "Caffe LeNet-5: conv20-pool-conv50-pool-fc500-fc (fixed, 431k params)"

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """Valid convolutions: 28x28 becomes 4x4x50 before the dense layers."""
        channels, height, width = _image_shape(self.name, input_shape, 12)
        side_h, side_w = ((height - 4) // 2 - 4) // 2, ((width - 4) // 2 - 4) // 2
        return nn.Sequential(
            nn.Conv2d(channels, 20, 5),
            nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(50 * side_h * side_w, 500),
            nn.ReLU(),
            nn.Linear(500, num_classes),
        )


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the fixed reference models."""
    for architecture in (MNIST2NN, FedAvgCNN, LeNet300100, LeNet5):
        register.architecture(architecture)
