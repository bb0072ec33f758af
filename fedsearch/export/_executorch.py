"""ExecuTorch programs (``.pte``) for mobile: ``torch.export`` lowered to the XNNPACK delegate."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from fedsearch._errors import ConfigError


def executorch_program(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """The model as an ExecuTorch program for a batch of one, XNNPACK-delegated.

    The weights are the decoded float32 ones (ExecuTorch's integer path
    quantizes activations too, which would change the outputs).

    Raises:
        ConfigError: ExecuTorch is not installed.
    """
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise ConfigError(
            "ExecuTorch export needs the executorch package: pip install 'fedsearch[mobile]'",
            field="--format",
        ) from exc
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # export prints deprecation notes of its own internals
        exported = torch.export.export(model, (torch.zeros((1, *input_shape)),))
        lowered = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        return lowered.to_executorch().buffer
