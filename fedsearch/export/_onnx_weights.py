"""ONNX initializers that keep an artifact tensor's stored form.

Every artifact tensor becomes a small subgraph whose output, named like the
tensor, is the float32 weight the artifact decodes to (bit for bit):

* quantized codes: an integer initializer (int4/uint4 up to 4 bits, int8/uint8
  up to 8, int16/uint16 above) with its scales and zero points feeding
  ``DequantizeLinear`` (per tensor, or per channel along the artifact's axis);
* float16 and bfloat16 values: an initializer of that type and a ``Cast``;
* float32 values: the initializer itself.

Pruned tensors are stored sparse when that is smaller: the nonzero values and
the gaps between their positions (uint8, uint16 or uint32, whichever holds the
largest gap), expanded by ``CumSum`` and ``ScatterElements`` into the dense
tensor. Everything is constant, so onnxruntime folds it once when the session
is created. ONNX sparse initializers were not used: the ONNX checker requires
int64 indices, eight bytes per nonzero, which is rarely smaller than dense.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ml_dtypes  # onnx's own dependency
import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from fedsearch.artifact import FloatTensor, QuantizedTensor, StoredTensor
from fedsearch.artifact._tensors import nonzero_positions


@dataclass
class WeightGraph:
    """Initializers and nodes that compute one or more float32 weights."""

    initializers: list[TensorProto] = field(default_factory=list)
    nodes: list[NodeProto] = field(default_factory=list)

    def add_constant(self, name: str, array: np.ndarray) -> str:
        """Add ``array`` as an initializer; return its name."""
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name


def _integer_type(tensor: QuantizedTensor) -> tuple[int, np.dtype] | None:
    """The narrowest ONNX integer type (and numpy dtype) for the codes and zero points.

    None when a zero point is negative or needs more than 16 bits (``DequantizeLinear``
    takes zero points of the codes' type); such tensors are kept as decoded floats.
    """
    kinds = (
        (4, TensorProto.INT4, np.int8, TensorProto.UINT4, np.uint8),
        (8, TensorProto.INT8, np.int8, TensorProto.UINT8, np.uint8),
        (16, TensorProto.INT16, np.int16, TensorProto.UINT16, np.uint16),
    )
    zero_point = tensor.zero_point
    for bits, signed_type, signed_dtype, unsigned_type, unsigned_dtype in kinds:
        if tensor.bits > bits:
            continue
        if zero_point is None:  # symmetric: signed codes, zero point 0
            return signed_type, np.dtype(signed_dtype)
        if int(zero_point.min()) >= 0 and int(zero_point.max()) < 1 << bits:
            return unsigned_type, np.dtype(unsigned_dtype)
    return None


_NARROW_DTYPES = {
    TensorProto.INT4: ml_dtypes.int4,
    TensorProto.UINT4: ml_dtypes.uint4,
    TensorProto.BFLOAT16: ml_dtypes.bfloat16,
}
"""numpy has no 4-bit or bfloat16 dtypes; onnx reads ml_dtypes' (and packs 4-bit values
two to a byte, the first in the low nibble, as ONNX stores them)."""


def _dense_initializer(name: str, onnx_type: int, values: np.ndarray) -> TensorProto:
    if onnx_type in _NARROW_DTYPES:
        values = values.astype(_NARROW_DTYPES[onnx_type])
    return numpy_helper.from_array(np.ascontiguousarray(values), name)


def _gap_dtype(largest: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _sparse_form(
    graph: WeightGraph,
    name: str,
    output: str,
    positions: np.ndarray,
    values: np.ndarray,
    shape: tuple[int, ...],
) -> None:
    """Scatter ``values`` at flat ``positions`` into zeros of ``shape``; return the output name."""
    steps = np.diff(positions, prepend=-1)  # each >= 1; cumsum(steps) - 1 gives the positions
    graph.add_constant(f"{name}::steps", steps.astype(_gap_dtype(int(steps.max(initial=1)))))
    graph.add_constant(f"{name}::values", values)
    graph.add_constant(f"{name}::size", np.array([int(np.prod(shape))], dtype=np.int64))
    graph.add_constant(f"{name}::shape", np.array(shape, dtype=np.int64))
    graph.add_constant(f"{name}::one", np.array(1, dtype=np.int64))
    graph.add_constant(f"{name}::axis", np.array(0, dtype=np.int64))
    zero = numpy_helper.from_array(np.zeros(1, dtype=values.dtype))
    graph.nodes += [
        helper.make_node("ConstantOfShape", [f"{name}::size"], [f"{name}::zeros"], value=zero),
        helper.make_node("Cast", [f"{name}::steps"], [f"{name}::steps64"], to=TensorProto.INT64),
        helper.make_node("CumSum", [f"{name}::steps64", f"{name}::axis"], [f"{name}::ends"]),
        helper.make_node("Sub", [f"{name}::ends", f"{name}::one"], [f"{name}::positions"]),
        helper.make_node(
            "ScatterElements",
            [f"{name}::zeros", f"{name}::positions", f"{name}::values"],
            [f"{name}::flat"],
        ),
        helper.make_node("Reshape", [f"{name}::flat", f"{name}::shape"], [output]),
    ]


def _serialized_nbytes(graph: WeightGraph) -> int:
    """Protobuf bytes of a graph's initializers and nodes, as the ONNX file stores them."""
    return sum(proto.ByteSize() for proto in (*graph.initializers, *graph.nodes))


def _stored_values(
    graph: WeightGraph,
    name: str,
    values: np.ndarray,
    onnx_type: int,
    positions: np.ndarray | None,
    output: str,
) -> str:
    """Add ``values`` in the smaller of dense and sparse form (by their serialized
    protobuf bytes), named ``output``.

    ``positions`` are the flat positions of the nonzero values, or None when the
    zero of the stored type is not the zero the pattern means (dense only).
    Sparse values are kept in ``values.dtype`` (4-bit codes take a byte each).
    """
    dense = WeightGraph(initializers=[_dense_initializer(output, onnx_type, values)])
    chosen = dense
    if positions is not None:
        sparse = WeightGraph()
        _sparse_form(sparse, name, output, positions, values.reshape(-1)[positions], values.shape)
        if _serialized_nbytes(sparse) < _serialized_nbytes(dense):
            chosen = sparse
    graph.initializers += chosen.initializers
    graph.nodes += chosen.nodes
    return output


def _quantized(graph: WeightGraph, name: str, tensor: QuantizedTensor) -> None:
    found = _integer_type(tensor)
    if found is None:  # a zero point outside every integer type: keep the decoded floats
        _floats(graph, name, FloatTensor(tensor.dequantize()))
        return
    onnx_type, dtype = found
    codes = tensor.codes.astype(dtype)
    zero_is_zero = tensor.zero_point is None or not tensor.zero_point.any()
    positions = nonzero_positions(tensor) if zero_is_zero else None
    stored = _stored_values(graph, name, codes, onnx_type, positions, f"{name}::stored")
    scalar = tensor.axis is None
    scale = tensor.scale.reshape(()) if scalar else tensor.scale
    inputs = [stored, graph.add_constant(f"{name}::scale", scale.astype(np.float32))]
    if tensor.zero_point is not None:
        zero_point = tensor.zero_point.reshape(()) if scalar else tensor.zero_point
        stored_zero = _dense_initializer(f"{name}::zero_point", onnx_type, zero_point.astype(dtype))
        graph.initializers.append(stored_zero)
        inputs.append(stored_zero.name)
    attributes = {} if scalar else {"axis": int(tensor.axis)}
    graph.nodes.append(helper.make_node("DequantizeLinear", inputs, [name], **attributes))


def _floats(graph: WeightGraph, name: str, tensor: FloatTensor) -> None:
    values = tensor.values
    positions = nonzero_positions(tensor)
    if tensor.bfloat16:
        # Sparse bfloat16 would need a bfloat16 ScatterElements: keep it dense.
        kind, positions = TensorProto.BFLOAT16, None
    elif values.dtype == np.float16:
        kind = TensorProto.FLOAT16
    else:
        _stored_values(graph, name, values, TensorProto.FLOAT, positions, name)
        return
    stored = _stored_values(graph, name, values, kind, positions, f"{name}::stored")
    graph.nodes.append(helper.make_node("Cast", [stored], [name], to=TensorProto.FLOAT))


def weight_graph(tensors: dict[str, StoredTensor]) -> WeightGraph:
    """The initializers and nodes that compute every tensor of ``tensors`` by its name."""
    graph = WeightGraph()
    for name, tensor in tensors.items():
        if isinstance(tensor, QuantizedTensor):
            _quantized(graph, name, tensor)
        else:
            _floats(graph, name, tensor)
    return graph
