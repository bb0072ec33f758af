"""Format version 2: entropy-coded bodies, bfloat16, module overrides; version 1 still read."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
import torch
from torch import nn

from fedsearch._errors import ArtifactError
from fedsearch.artifact import (
    FORMAT_VERSION,
    FloatTensor,
    ModelSpec,
    QuantizedTensor,
    apply_overrides,
    decode_artifact,
    describe_artifact,
    encode_artifact,
    module_overrides,
)
from fedsearch.artifact._sparse import encode_varints

SPEC = ModelSpec("mlp", {"widths": [8]}, (4,), 3)


def sparse_codes(seed=0, size=4000, density=0.1):
    rng = np.random.default_rng(seed)
    codes = np.where(rng.random(size) < density, rng.integers(-7, 8, size), 0)
    return QuantizedTensor(codes, np.array([0.01], np.float32), 4)


def test_version_2_is_written():
    assert FORMAT_VERSION == 2
    assert encode_artifact(SPEC, {})[:4] == b"FSZ\x02"


def test_entropy_coding_shrinks_a_sparse_tensor_and_round_trips():
    tensor = sparse_codes()
    plain = encode_artifact(SPEC, {"w": tensor}, entropy="none")
    coded = encode_artifact(SPEC, {"w": tensor}, entropy="lzma")
    auto = encode_artifact(SPEC, {"w": tensor})
    assert len(coded) < 0.9 * len(plain)
    assert auto == coded  # auto keeps the smaller
    for data in (plain, coded):
        assert np.array_equal(decode_artifact(data).tensors["w"].codes, tensor.codes)
    assert describe_artifact(coded)[0].num_bytes == describe_artifact(plain)[0].num_bytes


def test_auto_keeps_the_plain_body_when_coding_does_not_pay():
    tiny = {"b": FloatTensor(np.array([1.5], np.float32))}
    assert encode_artifact(SPEC, tiny) == encode_artifact(SPEC, tiny, entropy="none")


@pytest.mark.parametrize("keep", [5, 12, 30, -1, -5])
def test_truncated_entropy_coded_artifact_is_rejected(keep):
    data = encode_artifact(SPEC, {"w": sparse_codes()}, entropy="lzma")
    with pytest.raises(ArtifactError, match="truncated"):
        decode_artifact(data[:keep])


def test_corrupt_entropy_coded_body_is_rejected():
    data = bytearray(encode_artifact(SPEC, {"w": sparse_codes()}, entropy="lzma"))
    data[-20] ^= 0x10
    with pytest.raises(ArtifactError, match="corrupt"):
        decode_artifact(bytes(data))


def test_bfloat16_round_trips_in_16_bits():
    values = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    tensor = FloatTensor(values, bfloat16=True)
    expected = torch.from_numpy(values).to(torch.bfloat16).to(torch.float32).numpy()
    assert np.array_equal(tensor.values, expected)
    data = encode_artifact(SPEC, {"w": tensor}, entropy="none")
    decoded = decode_artifact(data).tensors["w"]
    assert decoded.bfloat16 and np.array_equal(decoded.values, expected)
    assert describe_artifact(data)[0].kind == "bfloat16"
    assert 2000 <= describe_artifact(data)[0].num_bytes < 2010


def test_module_overrides_rebuild_a_restructured_model():
    reference = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    model = nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(4, 2, bias=False), nn.Linear(2, 5)),
        nn.ReLU(),
        nn.Linear(5, 3),
    )
    overrides = module_overrides(model, reference)
    assert set(overrides) == {"1", "3"}
    spec = ModelSpec("mlp", {}, (4,), 3, modules=overrides)
    tensors = {k: FloatTensor(v.detach().numpy()) for k, v in model.state_dict().items()}
    decoded = decode_artifact(encode_artifact(spec, tensors))
    assert decoded.spec.modules == overrides
    rebuilt = apply_overrides(
        nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), overrides
    )
    rebuilt.load_state_dict(decoded.state_dict())
    inputs = torch.randn(6, 4)
    assert torch.equal(rebuilt(inputs), model(inputs))


def test_version_1_artifacts_still_load():
    row = ["w", [4], 0, 0, 16, 4]
    header = json.dumps(["mlp", {}, [4], 3, {}, [row]], separators=(",", ":")).encode()
    body = np.arange(4, dtype="<f4").tobytes()
    content = b"FSZ\x01" + encode_varints(np.array([len(header) << 1])) + header + body
    data = content + struct.pack("<I", zlib.crc32(content))
    artifact = decode_artifact(data)
    assert artifact.spec.modules == {}
    assert np.array_equal(artifact.tensors["w"].values, np.arange(4, dtype=np.float32))


def test_a_version_1_header_with_version_2_fields_is_rejected():
    header = json.dumps(["mlp", {}, [4], 3, {}, {}, []], separators=(",", ":")).encode()
    content = b"FSZ\x01" + encode_varints(np.array([len(header) << 1])) + header
    with pytest.raises(ArtifactError, match="header is invalid"):
        decode_artifact(content + struct.pack("<I", zlib.crc32(content)))
