"""ONNX export that keeps the artifact's compression: integer weights, half floats, sparsity.

torch.onnx (the TorchScript-based exporter, opset 17) writes the decoded
model's graph with float32 initializers; the graph is then converted to opset
21 (int4/uint4 ``DequantizeLinear``) with ``onnx.version_converter`` and every
initializer that holds an artifact tensor is replaced by that tensor's stored
form (see ``_onnx_weights``). The result computes exactly the weights the
artifact decodes to.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from fedsearch._errors import ConfigError
from fedsearch.artifact import Artifact

TORCH_OPSET = 17
ONNX_OPSET = 21
"""Opset of the exported files: the first with int4/uint4 ``DequantizeLinear``."""
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def require_onnx() -> None:
    """Raise a ConfigError naming the install command when onnx is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "ONNX export needs the onnx package: pip install 'fedsearch[export]'", field="--format"
        ) from exc


def float_onnx(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """The model as torch.onnx writes it (opset 17, dynamic batch, float32 weights)."""
    require_onnx()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter
        torch.onnx.export(
            model,
            (torch.zeros((1, *input_shape)),),
            buffer,
            dynamo=False,
            opset_version=TORCH_OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return buffer.getvalue()


def _matching_initializers(graph: object, artifact: Artifact) -> dict[str, str]:
    """Artifact tensor name -> the initializer holding exactly its decoded values."""
    from onnx import numpy_helper

    by_name = {initializer.name: initializer for initializer in graph.initializer}
    decoded = {name: tensor.dequantize() for name, tensor in artifact.tensors.items()}
    found: dict[str, str] = {}
    for name, values in decoded.items():
        candidates = [by_name[name]] if name in by_name else list(by_name.values())
        for initializer in candidates:
            if initializer.name in found.values() or tuple(initializer.dims) != values.shape:
                continue
            array = numpy_helper.to_array(initializer)
            if array.dtype == np.float32 and np.array_equal(
                array.view(np.uint32), values.view(np.uint32)
            ):
                found[name] = initializer.name
                break
    return found


def _shorten_names(graph: object, keep: set[str]) -> None:
    """Name intermediate values ``t0``, ``t1``, ... and drop node names and value infos.

    torch names every value after its module path (``/features/0/Conv_output_0``);
    in a model of a few hundred bytes of weights those names would outweigh
    them. The graph's input and output and the weights' own names are kept.
    """
    fixed = keep | {value.name for value in [*graph.input, *graph.output]}
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in fixed:
            return name
        return short.setdefault(name, f"t{len(short)}")

    for initializer in graph.initializer:
        initializer.name = rename(initializer.name)
    for node in graph.node:
        node.name = ""
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
    del graph.value_info[:]


def integer_onnx(
    model: nn.Module, artifact: Artifact, metadata: Mapping[str, str] | None = None
) -> bytes:
    """ONNX bytes of ``model`` (decoded from ``artifact``) with the artifact's stored weights.

    Args:
        model: The model the artifact decodes to, in eval mode.
        artifact: The decoded artifact (its stored tensors).
        metadata: String pairs written to the model's ``metadata_props``.

    Returns:
        A checked ONNX model (opset 21) whose output equals ``model``'s.
    """
    require_onnx()
    import onnx
    from onnx import helper, version_converter

    from fedsearch.export._onnx_weights import weight_graph

    proto = onnx.load_from_string(float_onnx(model, artifact.spec.input_shape))
    proto = version_converter.convert_version(proto, ONNX_OPSET)
    graph = proto.graph
    matches = _matching_initializers(graph, artifact)
    weights = weight_graph({name: artifact.tensors[name] for name in matches})
    renamed = {name: target for name, target in matches.items() if name != target}
    for node in weights.nodes:  # the stored form's output takes the initializer's name
        node.output[:] = [renamed.get(output, output) for output in node.output]
    for initializer in weights.initializers:
        initializer.name = renamed.get(initializer.name, initializer.name)
    kept = [item for item in graph.initializer if item.name not in set(matches.values())]
    del graph.initializer[:]
    graph.initializer.extend([*kept, *weights.initializers])
    nodes = [*weights.nodes, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    _shorten_names(graph, keep=set(matches.values()))
    if metadata:
        helper.set_model_props(proto, dict(metadata))
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()
