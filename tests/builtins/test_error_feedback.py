"""Error feedback: per-client residuals make the transmitted sum track the dense one."""

from __future__ import annotations

import torch

from fedsearch import compose_codecs


def build(registry, *stages):
    return compose_codecs([registry.create("codec", name, params) for name, params in stages])


def accumulate(codec, updates, client=0):
    sent = torch.zeros_like(updates[0])
    for update in updates:
        payload = codec.encode({"w": update}, client=client)
        sent += codec.decode(payload, like={"w": update}, client=client)["w"]
    return sent


def relative_gap(codec, updates):
    dense = torch.stack(updates).sum(0)
    return float((accumulate(codec, updates) - dense).norm() / dense.norm())


def noisy_updates(rounds, seed=0, size=2000):
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(size, generator=generator)
    return [mean + 0.5 * torch.randn(size, generator=generator) for _ in range(rounds)]


def test_accumulated_transmission_converges_to_the_dense_sum(registry):
    stages = (("error_feedback", {}), ("topk", {"fraction": 0.02}))
    gaps = [
        relative_gap(build(registry, *stages), noisy_updates(rounds)) for rounds in (20, 80, 320)
    ]
    # the residual stays bounded while the sum grows: the gap shrinks like 1 / rounds
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.1 and gaps[2] < gaps[0] / 6
    without = relative_gap(build(registry, ("topk", {"fraction": 0.02})), noisy_updates(320))
    assert without > 0.5  # top-k alone never sends most coordinates


def test_the_gap_is_exactly_the_residual(registry):
    codec = build(registry, ("error_feedback", {}), ("sign", {}))
    updates = noisy_updates(15, seed=3, size=300)
    sent = accumulate(codec, updates, client=4)
    residual = codec.residuals[4]["w"]
    assert torch.allclose(sent + residual, torch.stack(updates).sum(0), atol=1e-4)


def test_residuals_exist_only_for_clients_that_encoded(registry):
    codec = build(registry, ("error_feedback", {}), ("topk", {"fraction": 0.1}), ("qsgd", {}))
    update = {"w": torch.randn(50), "b": torch.randn(3)}
    for client in (7, 3, 7):
        codec.decode(codec.encode(update, client=client), like=update, client=client)
    assert set(codec.residuals) == {3, 7}
    assert codec.state_bytes == 2 * (50 + 3) * 4
    assert set(codec.residuals[3]) == {"w", "b"}


def test_clients_do_not_share_residuals(registry):
    codec = build(registry, ("error_feedback", {}), ("topk", {"fraction": 0.5}))
    update = {"w": torch.tensor([4.0, 3.0, 2.0, 1.0])}
    first = codec.decode(codec.encode(update, client=1), like=update, client=1)["w"]
    other = codec.decode(codec.encode(update, client=2), like=update, client=2)["w"]
    again = codec.decode(codec.encode(update, client=1), like=update, client=1)["w"]
    assert torch.equal(first, other)  # client 2 starts with no residual
    # residual [0, 0, 2, 1] is added: [4, 3, 4, 2], whose top two are the two 4s
    assert torch.equal(again, torch.tensor([4.0, 0.0, 4.0, 0.0]))
