"""Built-in codecs: round trips within each codec's stated bound, real bytes, pipelines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedsearch import compose_codecs

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
OUTPUT_EPS = {torch.float32: 0.0, torch.float64: 0.0, torch.float16: 2**-11, torch.bfloat16: 2**-8}
"""Relative rounding of casting a decoded float32 back to the payload's dtype."""


@st.composite
def payloads(draw):
    """1-3 tensors of random shapes (scalars and empty ones included) and one dtype."""
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from(DTYPES))
    sparsity = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]))
    scale = draw(st.sampled_from([1e-3, 1.0, 100.0]))
    shapes = draw(
        st.lists(st.lists(st.integers(0, 9), min_size=0, max_size=3), min_size=1, max_size=3)
    )
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for index, shape in enumerate(shapes):
        values = torch.randn(tuple(shape), generator=generator) * scale
        mask = torch.rand(tuple(shape), generator=generator) >= sparsity
        tensors[f"t{index}"] = (values * mask).to(dtype)
    return tensors


def build(registry, *stages):
    return compose_codecs([registry.create("codec", name, params) for name, params in stages])


def round_trip(codec, tensors, client=None):
    payload = codec.encode(tensors, client=client)
    assert isinstance(payload, bytes)
    decoded = codec.decode(payload, like=tensors, client=client)
    assert list(decoded) == list(tensors)
    for name, tensor in tensors.items():
        assert decoded[name].shape == tensor.shape and decoded[name].dtype == tensor.dtype
    return payload, decoded


def flat(tensors) -> np.ndarray:
    if not tensors:
        return np.zeros(0)
    return torch.cat([t.reshape(-1).double() for t in tensors.values()]).numpy()


def wire(tensors) -> np.ndarray:
    """What the codecs see: every value as float32."""
    if not tensors:
        return np.zeros(0)
    return torch.cat([t.reshape(-1).float() for t in tensors.values()]).double().numpy()


def output_tolerance(tensors, decoded: np.ndarray) -> np.ndarray:
    eps = OUTPUT_EPS[next(iter(tensors.values())).dtype]
    return eps * np.abs(decoded) + 1e-30


def assert_topk_pattern(x: np.ndarray, decoded: np.ndarray, count: int) -> None:
    """At most ``count`` survivors, and none smaller than anything dropped."""
    kept = decoded != 0
    assert kept.sum() <= count
    dropped = ~kept & (x != 0)
    if kept.any() and dropped.any():
        assert np.abs(x[kept]).min() >= np.abs(x[dropped]).max()


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(tensors=payloads())
def test_float32_is_exact_up_to_float32_rounding(registry, tensors):
    _, decoded = round_trip(build(registry, ("float32", {})), tensors)
    assert np.array_equal(flat(decoded), wire(tensors))


@SETTINGS
@given(tensors=payloads())
def test_float16_and_bfloat16_stay_within_their_rounding(registry, tensors):
    for name, relative, absolute in (("float16", 2**-11, 2**-25), ("bfloat16", 2**-8, 1e-38)):
        payload, decoded = round_trip(build(registry, (name, {})), tensors)
        x, d = wire(tensors), flat(decoded)
        bound = relative * np.abs(x) + absolute + output_tolerance(tensors, d)
        assert np.all(np.abs(d - x) <= bound)
        assert len(payload) == 1 + len(_varint(x.size)) + 2 * x.size


@SETTINGS
@given(tensors=payloads(), fraction=st.sampled_from([0.01, 0.1, 0.5, 1.0]))
def test_topk_keeps_the_largest_values_exactly(registry, tensors, fraction):
    _, decoded = round_trip(build(registry, ("topk", {"fraction": fraction})), tensors)
    x, d = wire(tensors), flat(decoded)
    count = math.ceil(fraction * x.size) if x.size else 0
    assert_topk_pattern(x, d, max(count, 1) if x.size else 0)
    kept = d != 0
    assert np.array_equal(
        d[kept], flat({k: v.float().to(v.dtype) for k, v in tensors.items()})[kept]
    )


@SETTINGS
@given(tensors=payloads(), fraction=st.sampled_from([0.05, 0.3, 1.0]))
def test_randk_sends_that_many_values_exactly(registry, tensors, fraction):
    _, decoded = round_trip(build(registry, ("randk", {"fraction": fraction})), tensors)
    x, d = wire(tensors), flat(decoded)
    count = min(x.size, max(1, math.ceil(fraction * x.size))) if x.size else 0
    assert (d != 0).sum() <= count
    assert np.all((d == x) | (d == 0))
    if fraction == 1.0:
        assert np.array_equal(d, x)


@SETTINGS
@given(tensors=payloads(), fraction=st.sampled_from([0.01, 0.2, 1.0]))
def test_stc_keeps_top_positions_with_exact_signs_and_one_magnitude(registry, tensors, fraction):
    _, decoded = round_trip(build(registry, ("stc", {"fraction": fraction})), tensors)
    x, d = wire(tensors), flat(decoded)
    count = min(x.size, max(1, math.ceil(fraction * x.size))) if x.size else 0
    kept = d != 0
    assert_topk_pattern(x, d, count)
    assert np.all(np.sign(d[kept]) == np.sign(x[kept]) + (x[kept] == 0))
    if kept.any():
        magnitudes = np.abs(d[kept])
        assert np.allclose(magnitudes, magnitudes[0], rtol=2**-7)


@SETTINGS
@given(
    tensors=payloads(),
    levels=st.integers(1, 16),
    norm=st.sampled_from(["l2", "max"]),
)
def test_qsgd_error_is_below_norm_over_levels(registry, tensors, levels, norm):
    codec = build(registry, ("qsgd", {"levels": levels, "norm": norm}))
    payload, decoded = round_trip(codec, tensors)
    x, d = wire(tensors), flat(decoded)
    scale = (np.linalg.norm(x) if norm == "l2" else np.abs(x).max()) if x.size else 0.0
    bound = scale / levels * (1 + 1e-6) + output_tolerance(tensors, d)
    assert np.all(np.abs(d - x) <= bound)
    bits = math.ceil(math.log2(2 * levels + 1))
    assert len(payload) == 1 + len(_varint(x.size)) + 4 + math.ceil(x.size * bits / 8)


@SETTINGS
@given(tensors=payloads())
def test_sign_keeps_signs_and_sends_the_mean_magnitude(registry, tensors):
    payload, decoded = round_trip(build(registry, ("sign", {})), tensors)
    x, d = wire(tensors), flat(decoded)
    assert len(payload) == 1 + len(_varint(x.size)) + 4 + math.ceil(x.size / 8)
    if x.size == 0:
        return
    mean = np.abs(x).mean()
    assert np.allclose(np.abs(d), mean, rtol=2**-7, atol=1e-30)
    nonzero = (x != 0) & (d != 0)
    assert np.all(np.sign(d[nonzero]) == np.sign(x[nonzero]))


@SETTINGS
@given(tensors=payloads(), fraction=st.sampled_from([0.05, 0.5]), levels=st.integers(1, 8))
def test_pipelines_combine_the_stages_bounds(registry, tensors, fraction, levels):
    x = wire(tensors)
    count = min(x.size, max(1, math.ceil(fraction * x.size))) if x.size else 0
    half = build(registry, ("topk", {"fraction": fraction}), ("float16", {}))
    _, decoded = round_trip(half, tensors)
    d = flat(decoded)
    kept = d != 0
    assert kept.sum() <= count
    assert np.all(
        np.abs(d[kept] - x[kept]) <= 2**-11 * np.abs(x[kept]) + 2**-24 + 2**-8 * np.abs(d[kept])
    )
    quantized = build(registry, ("topk", {"fraction": fraction}), ("qsgd", {"levels": levels}))
    _, decoded = round_trip(quantized, tensors)
    d = flat(decoded)
    top = np.sort(np.abs(x))[::-1][:count]
    bound = np.linalg.norm(top) / levels * (1 + 1e-6) + output_tolerance(tensors, d)
    # every decoded value is within the bound of the input or is a dropped (smallest) value
    inside = np.abs(d - x) <= bound
    assert np.all(inside | (np.abs(x) <= (top.min() if count else np.inf)))


def test_qsgd_is_unbiased(registry):
    codec = build(registry, ("qsgd", {"levels": 2}))
    x = {"w": torch.randn(50, generator=torch.Generator().manual_seed(1))}
    draws = torch.stack([round_trip(codec, x)[1]["w"] for _ in range(4000)])
    spread = x["w"].norm() / 2
    assert torch.allclose(draws.mean(0), x["w"], atol=float(spread) * 4 / math.sqrt(4000))
    assert not torch.allclose(draws[0], x["w"])


def test_rice_coded_positions_are_smaller_than_varints(registry):
    x = {"w": torch.randn(100_000, generator=torch.Generator().manual_seed(0))}
    payload, decoded = round_trip(build(registry, ("topk", {"fraction": 0.01})), x)
    count = 1000
    positions = np.flatnonzero(decoded["w"].numpy())
    gaps = np.diff(positions, prepend=-1) - 1
    varint_bytes = sum(len(_varint(int(gap))) for gap in gaps)
    header = 1 + len(_varint(100_000)) + len(_varint(count))
    index_bytes = len(payload) - header - 4 * count
    assert index_bytes < 0.85 * varint_bytes
    assert index_bytes < 1.1 * count  # about 8 bits per position of a 1% top-k


@pytest.mark.parametrize(
    ("stages", "problem"),
    [
        ([("qsgd", {}), ("topk", {})], "cannot be followed"),
        ([("stc", {}), ("float16", {})], "cannot be followed"),
        ([("error_feedback", {})], "cannot come last"),
    ],
)
def test_impossible_pipelines_are_refused(registry, stages, problem):
    with pytest.raises(ValueError, match=problem):
        build(registry, *stages)


def test_a_payload_for_another_codec_or_model_is_refused(registry):
    from fedsearch import FedsearchError

    x = {"w": torch.ones(10)}
    payload = build(registry, ("float16", {})).encode(x)
    with pytest.raises(FedsearchError, match="float32 payload is malformed"):
        build(registry, ("float32", {})).decode(payload, like=x)
    with pytest.raises(FedsearchError, match="values, expected 11"):
        build(registry, ("float16", {})).decode(payload, like={"w": torch.ones(11)})
    topk = build(registry, ("topk", {"fraction": 0.5}))
    with pytest.raises(FedsearchError, match="malformed"):
        topk.decode(topk.encode(x)[:-3], like=x)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value >= 0x80 else 0))
        value >>= 7
        if not value:
            return bytes(out)
