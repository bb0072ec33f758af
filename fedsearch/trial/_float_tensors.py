"""Which tensors an artifact keeps as plain float32, by the kind of layer that holds them."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from fedsearch.artifact import TensorReport


def float32_tensors(model: nn.Module, layers: Sequence[TensorReport]) -> dict[str, list[str]]:
    """Names of the tensors stored as float32, grouped by the type of their module.

    Tensors no compressor claims (biases, norm layers, buffers, layer types a
    quantizer does not support) are stored as float32; this says which, so a
    user of a custom architecture sees what stayed uncompressed.

    Args:
        model: The model decoded from the artifact.
        layers: ``describe_artifact`` of that artifact.

    Returns:
        ``{"BatchNorm2d": ["bn.weight", "bn.running_mean", ...], ...}``.
    """
    grouped: dict[str, list[str]] = {}
    for layer in layers:
        if layer.kind != "float32":
            continue
        owner = layer.name.rpartition(".")[0]
        try:
            module_type = type(model.get_submodule(owner)).__name__
        except AttributeError:
            module_type = type(model).__name__
        grouped.setdefault(module_type, []).append(layer.name)
    return grouped
