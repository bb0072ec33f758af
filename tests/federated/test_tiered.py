"""The heterogeneous round loop: tiers, dropouts, deadlines, slices through the channel."""

from __future__ import annotations

import pytest
import torch

from fedsearch.config import FederationConfig, TiersConfig
from fedsearch.federated import TieredFederation, TieredRun, TierModel, prepare_federated_data
from fedsearch.federated._clock import assign_tiers, available_clients, sample_clients
from fedsearch.host import get_registry

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TIERS = [
    {"name": "slow", "share": 0.5, "speed": 0.05, "budget_bytes": 1000, "availability": 0.6},
    {"name": "fast", "share": 0.5, "speed": 2.0, "budget_bytes": 8000, "availability": 0.9},
]


@pytest.fixture(scope="module")
def data():
    registry = get_registry()
    return prepare_federated_data(
        registry.create("dataset", "digits", {}).load(),
        val_fraction=0.2,
        partitioner=registry.create("partitioner", "iid", {}),
        num_clients=8,
        seed=0,
    )


def _federation(data, seed=0, rounds=3, **tiers):
    registry = get_registry()
    config = TiersConfig.model_validate({"tiers": TIERS, "flops_per_second": 1e7, **tiers})
    full = registry.create("architecture", "mlp", {"widths": [32]})
    torch.manual_seed(0)
    models = [
        TierModel(
            name,
            ratio,
            registry.create("architecture", "mlp", full.width_scaled(ratio)).build(
                data.input_shape, 10
            ),
        )
        for name, ratio in (("slow", 0.25), ("fast", 1.0))
    ]
    run = TieredRun(
        data=data,
        federation=FederationConfig(
            num_clients=8,
            rounds=rounds,
            fraction=0.75,
            learning_rate=0.3,
            local_epochs=2,
            batch_size=16,
        ),
        tiers=config,
        downlink_codec=registry.create("codec", "float32", {}),
        uplink_codec=registry.create("codec", "float32", {}),
        seed=seed,
    )
    return TieredFederation(full.build(data.input_shape, 10), models, run)


def _events(result):
    return [(e.sampled, e.unavailable, e.late, e.partial, e.seconds) for e in result.events]


def test_tiers_follow_the_shares_and_the_seed():
    first = assign_tiers(TiersConfig.model_validate({"tiers": TIERS}).tiers, 9, seed=3)
    assert sorted(first) == [0] * 5 + [1] * 4  # 4.5 each: the remainder goes to the first
    assert assign_tiers(TiersConfig.model_validate({"tiers": TIERS}).tiers, 9, seed=3) == first
    others = [
        assign_tiers(TiersConfig.model_validate({"tiers": TIERS}).tiers, 9, s) for s in range(5)
    ]
    assert len({tuple(o) for o in others}) > 1


def test_dropouts_are_drawn_per_client_from_the_seed_and_round_alone():
    config = TiersConfig.model_validate({"tiers": TIERS})
    tier_of = assign_tiers(config.tiers, 100, seed=0)
    everyone = list(range(100))
    answering = available_clients(everyone, tier_of, config.tiers, seed=0, round_index=2)
    assert available_clients(everyone, tier_of, config.tiers, 0, 2) == answering
    # a client's draw does not depend on who else was sampled
    subset = everyone[::3]
    assert available_clients(subset, tier_of, config.tiers, 0, 2) == [
        c for c in answering if c in subset
    ]
    slow_rate = sum(tier_of[c] == 0 for c in answering) / tier_of.count(0)
    fast_rate = sum(tier_of[c] == 1 for c in answering) / tier_of.count(1)
    assert 0.35 < slow_rate < 0.85 and fast_rate > 0.75
    assert available_clients(everyone, tier_of, config.tiers, 0, 3) != answering
    assert sample_clients(10, 0.5, 0, 1) == sample_clients(10, 0.5, 0, 1)


def test_dropouts_and_deadline_stragglers_repeat_under_the_seed(data):
    first = _federation(data, deadline_s=0.5).fit()
    again = _federation(data, deadline_s=0.5).fit()
    assert _events(first) == _events(again)
    assert first.downlink_bytes == again.downlink_bytes and first.uplink_bytes == again.uplink_bytes
    for name in first.weights:
        torch.testing.assert_close(first.weights[name], again.weights[name], rtol=0, atol=0)
    # the slow tier misses a 0.5 s deadline, the fast one makes it; some drop out
    tier_of = first.tier_of
    late = [c for e in first.events for c in e.late]
    assert late and all(tier_of[c] == 0 for c in late)
    assert any(e.unavailable for e in first.events)
    assert all(e.seconds == 0.5 for e in first.events if e.late)
    other = _federation(data, seed=1, deadline_s=0.5).fit()
    assert _events(other) != _events(first)


def test_partial_work_is_sent_and_counted_by_the_deadline(data):
    dropped = _federation(data, deadline_s=0.5).fit()
    partial = _federation(data, deadline_s=0.5, stragglers="partial").fit()
    assert any(e.partial for e in partial.events)
    assert not any(e.late for e in partial.events)
    assert partial.uplink_bytes > dropped.uplink_bytes  # the stragglers' updates now cross


def test_every_client_gets_its_tier_slice_through_the_channel(data):
    federation = _federation(data)
    result = federation.fit()
    slice_bytes = []
    for tier in range(2):
        numel = sum(t.numel() for t in federation.plan(tier).take(result.weights).values())
        slice_bytes.append(numel)
    codec = get_registry().create("codec", "float32", {})
    expected = 0
    for event in result.events:
        for client in sorted(set(event.sampled) - set(event.unavailable)):
            tier = result.tier_of[client]
            expected += len(codec.encode(federation.plan(tier).take(result.weights), client=client))
    assert result.downlink_bytes == expected
    assert result.uplink_bytes == expected  # each update has its slice's shape
    assert slice_bytes[0] < slice_bytes[1]
    assert result.round_time_s > 0
    assert result.history[-1].val_accuracy > 0.5


@pytest.mark.parametrize("slicing", ["ordered_dropout", "rolling"])
def test_fjord_and_fedrolex_train(data, slicing):
    result = _federation(data, rounds=4, slicing=slicing).fit()
    assert result.history[-1].val_accuracy > 0.5
