"""Readable names of a model's tensors: ``Conv2d 1 weight (4x1x5x5)`` for ``0.weight``."""

from __future__ import annotations

from collections import Counter

from torch import nn


def layer_labels(model: nn.Module) -> dict[str, str]:
    """Tensor name -> module kind, its number among modules of that kind, the tensor and shape.

    Modules are numbered in definition order per kind (``Linear 1``, ``Linear 2``),
    which reads better than the positions of an ``nn.Sequential`` (``4.weight``).
    """
    counts: Counter[str] = Counter()
    labels = {}
    for module_name, module in model.named_modules():
        tensors = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        if not tensors:
            continue
        kind = type(module).__name__
        counts[kind] += 1
        for tensor_name, tensor in tensors:
            name = f"{module_name}.{tensor_name}" if module_name else tensor_name
            shape = "x".join(str(size) for size in tensor.shape) or "scalar"
            labels[name] = f"{kind} {counts[kind]} {tensor_name} ({shape})"
    return labels
