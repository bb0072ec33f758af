"""ONNX with the artifact's stored weights: every family and compressor the quickstart can
produce (and half floats), run in onnxruntime against the artifact's decoded model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from fedsearch import CompressionContext, ModelSpec, build_artifact, get_registry, load_model
from fedsearch.artifact import QuantizedTensor, decode_artifact, encode_artifact
from fedsearch.export import ONNX_OPSET, integer_onnx

FAMILIES = {
    "mlp": {"depth": 2, "widths": [64, 32]},
    "cnn": {"depth": 2, "channels": [8, 16], "kernel_size": 3, "hidden": 32},
}
PRUNE = ("magnitude", {"sparsity": 0.9, "start_fraction": 0.0, "schedule": "one_shot"})
COMPRESSORS = {
    "magnitude": [PRUNE],
    **{f"uniform{bits}": [("uniform", {"bits": bits})] for bits in (2, 3, 4, 6, 8)},
    "uniform3-asym-channel": [
        ("uniform", {"bits": 3, "scheme": "asymmetric", "granularity": "channel"})
    ],
    "uniform8-channel": [("uniform", {"bits": 8, "granularity": "channel"})],
    "magnitude+uniform4": [PRUNE, ("uniform", {"bits": 4})],
    "magnitude+uniform6-channel": [PRUNE, ("uniform", {"bits": 6, "granularity": "channel"})],
    "float16": [("half", {"dtype": "float16"})],
    "bfloat16": [("half", {"dtype": "bfloat16"})],
}


def compressed_artifact(family, compressors):
    """An artifact written by the real compressors, as a trial writes it (no training)."""
    registry = get_registry()
    architecture = registry.create("architecture", family, FAMILIES[family])
    torch.manual_seed(0)
    model = architecture.build((1, 8, 8), 10)
    weights = {name: value.detach().clone() for name, value in model.state_dict().items()}
    built = []
    for name, params in compressors:
        compressor = registry.create("compressor", name, params)
        compressor.setup(CompressionContext(model=model, num_rounds=1, teacher=None))
        compressor.on_round_start(weights, 0)
        built.append(compressor)
    spec = ModelSpec(family, architecture.params.model_dump(mode="json"), (1, 8, 8), 10)
    return build_artifact(spec, weights, built)


def initializer_types(proto):
    return {onnx.TensorProto.DataType.Name(item.data_type) for item in proto.graph.initializer}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_onnx_export_computes_the_artifacts_model_with_its_stored_weights(family, kind):
    data = compressed_artifact(family, COMPRESSORS[kind])
    artifact = decode_artifact(data)
    model = load_model(data, get_registry())
    exported = integer_onnx(model, artifact)
    proto = onnx.load_from_string(exported)
    assert proto.opset_import[0].version == ONNX_OPSET
    inputs = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    session = onnxruntime.InferenceSession(exported, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": inputs.numpy()})
    with torch.no_grad():
        expected = model(inputs).numpy()
    assert np.abs(logits - expected).max() <= 1e-5
    types = initializer_types(proto)
    operators = {node.op_type for node in proto.graph.node}
    bits = next((params.get("bits") for name, params in COMPRESSORS[kind] if name == "uniform"), 0)
    if bits:
        signed = "asym" not in kind and bits > 2  # 2 bits: asymmetric by default (scheme auto)
        width = "4" if bits <= 4 else "8"
        assert ("INT" if signed else "UINT") + width in types
        assert "DequantizeLinear" in operators
    if kind.startswith("magnitude"):  # 90% zeros: the sparse form is the smaller
        assert "ScatterElements" in operators
    if kind in ("float16", "bfloat16"):
        assert kind.upper() in types and "Cast" in operators
    float_weights = [
        item.name
        for item in proto.graph.initializer
        if item.data_type == onnx.TensorProto.FLOAT and item.name.endswith("weight")
    ]
    if kind != "magnitude":  # float32 weights only where nothing else was stored
        assert not float_weights
    assert len(exported) <= 2.5 * len(data) + 2048


def test_onnx_export_of_uncompressed_model_keeps_float32_weights_and_is_exact():
    data = compressed_artifact("mlp", [])
    model = load_model(data, get_registry())
    exported = integer_onnx(model, decode_artifact(data), {"fedsearch.trial": "7"})
    proto = onnx.load_from_string(exported)
    assert initializer_types(proto) == {"FLOAT"}
    assert {prop.key: prop.value for prop in proto.metadata_props} == {"fedsearch.trial": "7"}
    # nothing but the weights: the file is the raw float32 values plus a small graph
    assert len(exported) - sum(p.numel() * 4 for p in model.parameters()) < 1024


@pytest.mark.parametrize(("zero_point", "expected"), [(20, "UINT8"), (-3, None)])
def test_zero_points_outside_the_codes_type_widen_it_or_keep_floats(zero_point, expected):
    registry = get_registry()
    architecture = registry.create("architecture", "mlp", {"depth": 1, "widths": [16]})
    model = architecture.build((1, 8, 8), 10)
    rng = np.random.default_rng(0)
    tensors = {}
    for name, value in model.state_dict().items():
        codes = rng.integers(0, 16, size=tuple(value.shape))
        tensors[name] = QuantizedTensor(codes, np.float32(0.01), 4, None, np.int32(zero_point))
    spec = ModelSpec("mlp", architecture.params.model_dump(mode="json"), (1, 8, 8), 10)
    data = encode_artifact(spec, tensors)
    decoded = load_model(data, registry)
    exported = integer_onnx(decoded, decode_artifact(data))
    types = initializer_types(onnx.load_from_string(exported))
    assert ("UINT8" in types) == (expected == "UINT8") and "UINT4" not in types
    inputs = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    session = onnxruntime.InferenceSession(exported, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert (
            np.abs(session.run(None, {"input": inputs.numpy()})[0] - decoded(inputs).numpy()).max()
            <= 1e-5
        )
