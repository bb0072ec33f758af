"""The artifact format: exact round trips, compactness and damage detection."""

from __future__ import annotations

import contextlib
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedsearch._errors import ArtifactError
from fedsearch.artifact import (
    FORMAT_VERSION,
    Artifact,
    FloatTensor,
    ModelSpec,
    QuantizedTensor,
    StoredTensor,
    decode_artifact,
    describe_artifact,
    encode_artifact,
)
from fedsearch.artifact._sparse import decode_varints, encode_varints

SPEC = ModelSpec("mlp", {"hidden": [32, 16], "activation": "relu"}, (1, 28, 28), 10)


def with_crc(content: bytes) -> bytes:
    return content + struct.pack("<I", zlib.crc32(content))


def body_size(data: bytes) -> int:
    (prefix,), used = decode_varints(data[4:14], 1)
    return len(data) - 4 - used - (int(prefix) >> 2) - 4


def assemble(document: object, body: bytes) -> bytes:
    header = json.dumps(document, separators=(",", ":")).encode()
    return with_crc(b"FSZ\x01" + encode_varints(np.array([len(header) << 1])) + header + body)


def sparse_float(rng: np.random.Generator, shape: tuple[int, ...], sparsity: float, dtype: type):
    values = rng.standard_normal(shape).astype(dtype)
    return np.where(rng.random(shape) < sparsity, dtype(0), values) + dtype(0)  # no -0.0


def random_quantized(draw: st.DrawFn, shape: tuple[int, ...], rng: np.random.Generator):
    bits = draw(st.integers(2, 8))
    axis = draw(st.none() | st.integers(0, len(shape) - 1)) if shape else None
    channels = 1 if axis is None else shape[axis]
    scale = (rng.random(channels) + 0.01).astype(np.float32)
    sparsity = draw(st.floats(0, 1))
    if draw(st.booleans()):
        zero_point = rng.integers(0, 1 << bits, size=channels).astype(np.int32)
        codes = rng.integers(0, 1 << bits, size=shape)
        zero_shape = [1] * len(shape)
        if axis is not None:
            zero_shape[axis] = -1
        zeros = np.broadcast_to(zero_point.reshape(zero_shape), shape)
    else:
        zero_point = None
        half = (1 << (bits - 1)) - 1
        codes, zeros = rng.integers(-half, half + 1, size=shape), np.zeros(shape, np.int64)
    codes = np.where(rng.random(shape) < sparsity, zeros, codes)
    return QuantizedTensor(codes, scale, bits, axis=axis, zero_point=zero_point)


@st.composite
def stored_tensors(draw: st.DrawFn) -> StoredTensor:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["float32", "float16", "quantized"]))
    if kind == "quantized":
        return random_quantized(draw, shape, rng)
    dtype = np.float32 if kind == "float32" else np.float16
    return FloatTensor(sparse_float(rng, shape, draw(st.floats(0, 1)), dtype))


def assert_same_tensor(decoded: StoredTensor, original: StoredTensor) -> None:
    assert type(decoded) is type(original)
    expected, actual = original.dequantize(), decoded.dequantize()
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()
    if isinstance(original, FloatTensor):
        assert decoded.values.dtype == original.values.dtype
        assert decoded.values.tobytes() == original.values.tobytes()
    else:
        assert (decoded.bits, decoded.axis) == (original.bits, original.axis)
        np.testing.assert_array_equal(decoded.codes, original.codes)
        assert decoded.scale.tobytes() == original.scale.tobytes()
        assert (decoded.zero_point is None) == (original.zero_point is None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(stored_tensors(), min_size=1, max_size=4))
def test_round_trip_is_exact(tensors: list[StoredTensor]) -> None:
    named = {f"layers.{i}.weight": tensor for i, tensor in enumerate(tensors)}
    artifact = decode_artifact(encode_artifact(SPEC, named))
    assert list(artifact.tensors) == list(named)
    for name, tensor in named.items():
        assert_same_tensor(artifact.tensors[name], tensor)


@pytest.mark.parametrize(
    "tensor",
    [
        FloatTensor(np.array(2.5, dtype=np.float32)),
        FloatTensor(np.array([-1.0], dtype=np.float16)),
        FloatTensor(np.zeros((3, 4), dtype=np.float32)),
        FloatTensor(np.zeros((0, 5), dtype=np.float32)),
        FloatTensor(np.array([np.nan, np.inf, -np.inf, 0.0], dtype=np.float32)),
        QuantizedTensor(np.array(-3), np.array([0.5], np.float32), 3),
        QuantizedTensor(np.zeros((2, 3), np.int8), np.array([0.1, 0.2], np.float32), 4, axis=0),
        QuantizedTensor(np.array([[65535]]), np.array([1e-3], np.float32), 16, None, np.array([7])),
        QuantizedTensor(np.array([-32767, 32767]), np.array([2.0], np.float32), 16),
        QuantizedTensor(np.zeros(5, np.int32), np.array([1.0], np.float32), 1),
    ],
    ids=["0d", "f16", "zeros", "empty", "nonfinite", "q0d", "qzeros", "q16zp", "q16", "q1bit"],
)
def test_edge_cases_round_trip(tensor: StoredTensor) -> None:
    data = encode_artifact(SPEC, {"t": tensor})
    assert_same_tensor(decode_artifact(data).tensors["t"], tensor)


def test_negative_zero_counts_as_zero() -> None:
    values = np.zeros(1000, dtype=np.float32)
    values[:3] = [1.0, -0.0, 2.0]
    (report,) = describe_artifact(encode_artifact(SPEC, {"t": FloatTensor(values)}))
    assert report.encoding == "index"
    decoded = decode_artifact(encode_artifact(SPEC, {"t": FloatTensor(values)})).tensors["t"]
    np.testing.assert_array_equal(decoded.values, values)  # -0.0 == 0.0


def test_sparse_low_bit_tensor_is_far_smaller_than_float32() -> None:
    rng = np.random.default_rng(4)
    codes = np.where(rng.random((100, 100)) < 0.9, 0, rng.integers(1, 8, (100, 100)))
    tensor = QuantizedTensor(codes, np.array([0.05], np.float32), 4)
    data = encode_artifact(SPEC, {"w": tensor})
    raw_float32 = tensor.dequantize().nbytes
    assert len(data) < raw_float32 / 8 + 100
    assert_same_tensor(decode_artifact(data).tensors["w"], tensor)


def test_small_artifact_overhead() -> None:
    tiny = {"w": FloatTensor(np.ones(1, np.float32))}
    data = encode_artifact(ModelSpec("mlp", {}, (4,), 3), tiny)
    assert len(data) - 4 <= 48


def test_model_spec_round_trips() -> None:
    spec = ModelSpec(
        "cnn", {"channels": [8, 16], "dropout": 0.25, "name": "ünï"}, (3, 32, 32), 100,
        metadata={"trial": 17, "study": "s1"},
    )  # fmt: skip
    decoded = decode_artifact(encode_artifact(spec, {})).spec
    assert decoded == spec
    assert decoded.input_shape == (3, 32, 32)


def test_describe_reports_each_tensor() -> None:
    rng = np.random.default_rng(5)
    few = np.zeros(1000, np.float32)
    few[[1, 50, 900]] = 1.0
    half = np.where(rng.random(1000) < 0.5, 0, rng.integers(1, 8, 1000))
    tensors = {
        "few": FloatTensor(few),
        "half": QuantizedTensor(half, np.array([0.1], np.float32), 4),
        "dense": FloatTensor(rng.standard_normal(64).astype(np.float16) + np.float16(10)),
    }
    data = encode_artifact(SPEC, tensors, entropy="none")
    reports = describe_artifact(data)
    assert [r.name for r in reports] == ["few", "half", "dense"]
    assert [r.kind for r in reports] == ["float32", "quantized", "float16"]
    assert [r.bits for r in reports] == [32, 4, 16]
    assert [r.encoding for r in reports] == ["index", "bitmap", "dense"]
    assert reports[0].sparsity == pytest.approx(0.997)
    assert reports[1].sparsity == pytest.approx(np.mean(half == 0))
    assert reports[2].sparsity == 0.0 and reports[2].num_bytes == 128
    assert reports[1].shape == (1000,)
    assert sum(r.num_bytes for r in reports) == body_size(data)


def test_state_dict_is_float32_torch() -> None:
    rng = np.random.default_rng(6)
    scale = np.array([0.1, 0.2, 0.3], np.float32)
    weight = QuantizedTensor(rng.integers(-7, 8, (3, 4)), scale, 4, axis=0)
    bias = FloatTensor(rng.standard_normal(3).astype(np.float16))
    artifact = decode_artifact(encode_artifact(SPEC, {"weight": weight, "bias": bias}))
    state = artifact.state_dict()
    for name, tensor in {"weight": weight, "bias": bias}.items():
        assert state[name].dtype == torch.float32 and state[name].is_contiguous()
        assert torch.equal(state[name], torch.from_numpy(tensor.dequantize()))
    torch.nn.Linear(4, 3).load_state_dict(state)


def test_dequantize_matches_torch_bitwise() -> None:
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 256, (5, 6))
    scale = rng.random(6).astype(np.float32) / 7
    zero_point = rng.integers(0, 256, 6).astype(np.int32)
    tensor = QuantizedTensor(codes, scale, 8, axis=1, zero_point=zero_point)
    expected = (torch.from_numpy(codes).float() - torch.from_numpy(zero_point).float()) * (
        torch.from_numpy(scale)
    )
    assert tensor.dequantize().tobytes() == expected.numpy().tobytes()


def valid_artifact() -> bytes:
    codes = np.random.default_rng(8).integers(-7, 8, 200)
    return encode_artifact(SPEC, {"w": QuantizedTensor(codes, np.array([0.5], np.float32), 4)})


def test_corrupt_body_byte_fails_crc() -> None:
    data = bytearray(valid_artifact())
    data[-10] ^= 0x01
    with pytest.raises(ArtifactError, match=r"corrupt.*CRC"):
        decode_artifact(bytes(data))


def test_corrupt_header_byte_is_an_artifact_error() -> None:
    data = bytearray(valid_artifact())
    for offset in range(4, len(data)):
        damaged = bytearray(data)
        damaged[offset] ^= 0x40
        with pytest.raises(ArtifactError):
            decode_artifact(bytes(damaged))


@pytest.mark.parametrize("keep", [0, 2, 4, 5, 9, 20, 60, -1])
def test_truncated_artifact_is_rejected(keep: int) -> None:
    data = valid_artifact()
    with pytest.raises(ArtifactError, match="truncated"):
        decode_artifact(data[:keep])


def test_appended_bytes_are_rejected() -> None:
    with pytest.raises(ArtifactError, match="corrupt"):
        decode_artifact(valid_artifact() + b"\x00")


def test_wrong_magic_is_rejected() -> None:
    with pytest.raises(ArtifactError, match="not a fedsearch artifact"):
        decode_artifact(b"PK\x03\x04" + valid_artifact()[4:])


def test_future_version_is_rejected() -> None:
    data = bytearray(valid_artifact())
    data[3] = FORMAT_VERSION + 1
    with pytest.raises(ArtifactError, match=f"version {FORMAT_VERSION + 1}.*version 1"):
        decode_artifact(with_crc(bytes(data[:-4])))


def test_header_lengths_must_add_up() -> None:
    row = ["w", [4], 0, 0, 16, 4]
    document = ["mlp", {}, [4], 3, {}, [row]]
    decode_artifact(assemble(document, bytes(16)))  # consistent
    with pytest.raises(ArtifactError, match="truncated"):
        decode_artifact(assemble(document, bytes(12)))
    with pytest.raises(ArtifactError, match="corrupt"):
        decode_artifact(assemble(document, bytes(20)))


@pytest.mark.parametrize(
    ("row", "body", "problem"),
    [
        (["w", [4], 0, 0, 12, 4], bytes(12), "invalid"),  # record too short for 4 floats
        (["w", [4], 9, 0, 16, 4], bytes(16), "header is invalid"),  # unknown kind
        (["w", [8], 2, 1, 2, 1, 4], b"\x01\x0f", "invalid"),  # 4-bit symmetric code 8
        (["w", [8], 0, 2, 5, 1], b"\x09" + bytes(4), "invalid"),  # index past the end
        (["w", [2], 2, 0, 5, 2, 4], b"\x00\x00\x00\x00\x00", "invalid"),  # scale 0
    ],
)
def test_inconsistent_records_are_rejected(row: list, body: bytes, problem: str) -> None:
    with pytest.raises(ArtifactError, match=problem):
        decode_artifact(assemble(["mlp", {}, [4], 3, {}, [row]], body))


def test_garbage_header_is_an_artifact_error() -> None:
    for header in [b"not json", b"[1,2]", b'["mlp",{},[4],3,{},[["w",[4]]]]']:
        content = b"FSZ\x01" + bytes([len(header) << 1]) + header
        with pytest.raises(ArtifactError, match="header is invalid"):
            decode_artifact(with_crc(content))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_damage_raises_only_artifact_error(data: st.DataObject) -> None:
    original = bytearray(valid_artifact()[:-4])
    for _ in range(data.draw(st.integers(1, 4))):
        original[data.draw(st.integers(0, len(original) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ArtifactError):
        decode_artifact(with_crc(bytes(original)))


def test_encode_rejects_wrong_inputs() -> None:
    with pytest.raises(TypeError, match="QuantizedTensor or FloatTensor"):
        encode_artifact(SPEC, {"w": np.zeros(3)})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="JSON"):
        encode_artifact(ModelSpec("mlp", {"f": object()}, (1,), 2), {})


def test_artifact_of_a_few_million_elements_round_trips() -> None:
    rng = np.random.default_rng(9)
    codes = np.where(rng.random((2000, 1500)) < 0.8, 0, rng.integers(-7, 8, (2000, 1500)))
    weights = QuantizedTensor(codes, rng.random(2000).astype(np.float32) + 0.1, 4, axis=0)
    floats = FloatTensor(sparse_float(rng, (3_000_000,), 0.5, np.float32))
    artifact = decode_artifact(encode_artifact(SPEC, {"q": weights, "f": floats}, entropy="none"))
    assert_same_tensor(artifact.tensors["q"], weights)
    assert_same_tensor(artifact.tensors["f"], floats)
    assert isinstance(artifact, Artifact)


class TestQuantizedTensorValidation:
    def test_codes_out_of_range_for_bits(self) -> None:
        with pytest.raises(ValueError, match=r"\[-7, 7\] for 4-bit symmetric"):
            QuantizedTensor(np.array([8]), np.array([1.0], np.float32), 4)
        with pytest.raises(ValueError, match=r"\[-7, 7\]"):
            QuantizedTensor(np.array([-8]), np.array([1.0], np.float32), 4)
        with pytest.raises(ValueError, match=r"\[0, 15\] for 4-bit asymmetric"):
            QuantizedTensor(np.array([16]), np.array([1.0], np.float32), 4, None, np.array([0]))
        with pytest.raises(ValueError, match=r"\[0, 15\]"):
            QuantizedTensor(np.array([-1]), np.array([1.0], np.float32), 4, None, np.array([0]))

    def test_bad_scale_shape(self) -> None:
        with pytest.raises(ValueError, match=r"scale must have shape \(3,\)"):
            QuantizedTensor(np.zeros((3, 2), np.int8), np.ones(2, np.float32), 4, axis=0)
        with pytest.raises(ValueError, match=r"scale must have shape \(1,\)"):
            QuantizedTensor(np.zeros((3, 2), np.int8), np.ones(3, np.float32), 4)
        with pytest.raises(ValueError, match="zero_point must have shape"):
            zero_point = np.zeros(2, np.int32)
            QuantizedTensor(np.zeros(3, np.int8), np.ones(1, np.float32), 4, None, zero_point)

    @pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
    def test_scales_must_be_finite_and_positive(self, bad: float) -> None:
        with pytest.raises(ValueError, match="finite and positive"):
            QuantizedTensor(np.zeros(2, np.int8), np.array([bad], np.float32), 4)

    def test_other_invalid_arguments(self) -> None:
        scale = np.ones(1, np.float32)
        with pytest.raises(ValueError, match="bits"):
            QuantizedTensor(np.zeros(2, np.int8), scale, 17)
        with pytest.raises(ValueError, match="integer array"):
            QuantizedTensor(np.zeros(2), scale, 4)
        with pytest.raises(ValueError, match="axis 2 is out of range"):
            QuantizedTensor(np.zeros((2, 2), np.int8), np.ones(2, np.float32), 4, axis=2)
        with pytest.raises(ValueError, match="float32 or float16"):
            FloatTensor(np.zeros(2))

    def test_normalises_inputs(self) -> None:
        tensor = QuantizedTensor(np.zeros((2, 3), np.int8), np.ones(3), 4, axis=-1)
        assert tensor.axis == 1 and tensor.scale.dtype == np.float32
        scalar = QuantizedTensor(np.zeros(2, np.int8), np.float32(0.5), 4, None, np.int64(3))
        assert scalar.scale.shape == (1,) and scalar.zero_point.dtype == np.int32
