"""Artifacts are untrusted input: whatever their bytes, only ArtifactError escapes the loader.

The corruptions start from real artifacts (built by the real compressors) and
either change raw bytes or rewrite one value of the header's JSON, with the
CRC32 left alone or recomputed so that the corruption reaches the parser.
Every size a header can claim is bounded, so no corruption makes a load slow
or large (``benchmarks/artifact_fuzz.py`` measures the slowest load).
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from fedsearch import ArtifactError, CompressionContext, ModelSpec, get_registry
from fedsearch.artifact._format import _PREAMBLE_LENGTH, _read_prefix
from fedsearch.artifact._sparse import encode_varints
from fedsearch.trial import build_artifact, load_model

pytestmark = pytest.mark.slow

CASES = {
    # architecture, its params, input shape, compressors (name, params)
    "mlp-pruned-asymmetric-channel": (
        "mlp",
        {"widths": [24]},
        (1, 8, 8),
        [
            ("magnitude", {"sparsity": 0.7, "start_fraction": 0.0}),
            ("uniform", {"bits": 4, "scheme": "asymmetric", "granularity": "channel"}),
        ],
    ),
    "cnn-structured-symmetric": (
        "cnn",
        {"depth": 1, "channels": [6], "kernel_size": 3, "hidden": 16},
        (1, 8, 8),
        [
            ("structured", {"sparsity": 0.5, "start_fraction": 0.0}),
            ("uniform", {"bits": 6}),
        ],
    ),
    "dscnn-half": ("dscnn", {"depth": 1}, (3, 8, 8), [("half", {"dtype": "float16"})]),
}


REGISTRY = get_registry()


@functools.cache
def real_artifacts() -> tuple[bytes, ...]:
    """One artifact per case, as a trial writes it (after one round's compression)."""
    registry = REGISTRY
    artifacts = []
    for architecture, params, shape, compressors in CASES.values():
        family = registry.create("architecture", architecture, params)
        torch.manual_seed(0)
        model = family.build(shape, 10)
        reference = family.build(shape, 10)
        weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        stages = []
        for name, knobs in compressors:
            compressor = registry.create("compressor", name, knobs)
            compressor.setup(CompressionContext(model=model, num_rounds=1, teacher=None))
            compressor.on_round_start(weights, 0)
            stages.append(compressor)
        spec = ModelSpec(architecture, params, shape, 10)
        artifacts.append(build_artifact(spec, weights, stages, model=model, reference=reference))
    return tuple(artifacts)


def test_the_real_artifacts_load(registry):
    for data in real_artifacts():
        assert isinstance(load_model(data, registry), nn.Module)


def with_crc(content: bytes) -> bytes:
    return content + zlib.crc32(content).to_bytes(4, "little")


def assert_only_artifact_error(data: bytes) -> None:
    try:
        model = load_model(data, REGISTRY)
    except ArtifactError:
        return
    assert isinstance(model, nn.Module)


@st.composite
def raw_corruptions(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(real_artifacts())))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["set", "flip", "truncate", "insert", "delete"]))
        if kind == "set" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif kind == "flip" and where < len(data):
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[where:]
        elif kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[where : where + draw(st.integers(1, 16))]
    if draw(st.booleans()) and len(data) > 4:
        return with_crc(bytes(data[:-4]))
    return bytes(data)


HOSTILE_VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**32 + 1, 10**12, 2**63, 0.5, float("nan"), float("inf")]),
    st.text(max_size=8),
    st.none(),
    st.booleans(),
    st.lists(st.integers(-3, 2**40), max_size=6),
    st.dictionaries(st.text(max_size=4), st.integers(-3, 2**40), max_size=3),
)


def _paths(node: object, path: tuple = ()) -> list[tuple]:
    """Every position in a JSON document, the root excluded."""
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    found = []
    for key, child in children:
        found.append((*path, key))
        found += _paths(child, (*path, key))
    return found


def rewrite_header(data: bytes, change: Callable[[list[Any]], None]) -> bytes:
    """``data`` with its header JSON changed by ``change``, re-packed with a valid CRC."""
    payload, deflated, entropy, body_start = _read_prefix(data, data[3])
    document = json.loads(zlib.decompress(payload, -15) if deflated else payload)
    change(document)
    header = json.dumps(document).encode()
    prefix = encode_varints(np.array([len(header) << 2 | int(entropy) << 1]))
    return with_crc(data[:_PREAMBLE_LENGTH] + prefix + header + data[body_start:-4])


@st.composite
def header_corruptions(draw: st.DrawFn) -> bytes:
    """A real artifact with one header value replaced (the CRC recomputed)."""

    def replace_one_value(document: list[Any]) -> None:
        *parent_path, key = draw(st.sampled_from(_paths(document)))
        parent = document
        for step in parent_path:
            parent = parent[step]
        parent[key] = draw(HOSTILE_VALUES)

    return rewrite_header(draw(st.sampled_from(real_artifacts())), replace_one_value)


FUZZ = settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@FUZZ
@given(raw_corruptions())
def test_raw_byte_corruptions_raise_only_artifact_error(data):
    assert_only_artifact_error(data)


@FUZZ
@given(header_corruptions())
def test_header_value_corruptions_raise_only_artifact_error(data):
    assert_only_artifact_error(data)


def _set(key: int, value: Any) -> Callable[[list[Any]], None]:
    return lambda document: document.__setitem__(key, value)


def _huge_override(document: list[Any]) -> None:
    document[5]["0"]["out"] = 10**9  # the structurally pruned first convolution


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set(3, 10**12), "num_classes"),
        (_set(3, 0), "num_classes"),
        (_set(2, [1, 2, 2]), "does not fit"),  # the CNN's kernel is larger than the image
        (_set(2, [1, 10**9, 10**9]), "input_shape"),
        (_set(1, {"depth": 1, "channels": [6], "kernel_size": 3, "hidden": 10**9}), "hidden"),
        (_set(0, "no_such_family"), "no_such_family"),
        (_huge_override, "does not fit"),
    ],
    ids=[
        "huge-classes",
        "no-classes",
        "tiny-image",
        "huge-image",
        "huge-hidden",
        "unknown-family",
        "huge-module",
    ],
)
def test_crafted_headers_with_a_valid_crc_are_artifact_errors(registry, change, problem):
    crafted = rewrite_header(real_artifacts()[1], change)  # the structurally pruned CNN
    with pytest.raises(ArtifactError, match=problem):
        load_model(crafted, registry)
