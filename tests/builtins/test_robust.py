"""Robust aggregation rules against aggregates computed by hand, and on compressed updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedsearch import ClientUpdate, ServerRound
from fedsearch.config import FederationConfig
from fedsearch.federated import FederatedRun, run_federated
from fedsearch.testing._rounds import tiny_data

ROUND = ServerRound(0, 1, 1.0, np.random.default_rng(0))
ZERO = {"w": torch.zeros(2), "steps": torch.tensor(5)}


def updates(*vectors, examples=None):
    return [
        ClientUpdate(
            k,
            (examples or [10] * len(vectors))[k],
            {"w": torch.tensor(v), "steps": torch.tensor(1)},
        )
        for k, v in enumerate(vectors)
    ]


HONEST = [[1.0, 1.0], [1.1, 0.9], [0.9, 1.1], [1.0, 1.2], [1.2, 1.0]]
ATTACKED = updates(*HONEST, [-40.0, -40.0])


def aggregate(registry, name, params=None, received=ATTACKED):
    return registry.create("strategy", name, params or {}).aggregate(ZERO, received, ROUND)


def test_krum_picks_the_update_nearest_its_neighbours(registry):
    # n = 6, f = floor(0.2 * 6) = 1: each score sums the 3 smallest squared distances;
    # [1.0, 1.0] is 0.02 from [1.1, 0.9] and [0.9, 1.1] and 0.04 from [1.0, 1.2]
    new = aggregate(registry, "krum", {"byzantine_fraction": 0.2})
    assert new["w"].tolist() == pytest.approx([1.0, 1.0])
    assert int(new["steps"]) == 5  # integer tensors keep the global value


def test_multi_krum_averages_the_n_minus_f_best(registry):
    new = aggregate(registry, "multi_krum", {"byzantine_fraction": 0.2})
    assert new["w"].tolist() == pytest.approx(np.mean(HONEST, axis=0).tolist())


def test_median_is_coordinatewise_and_averages_the_middle_pair(registry):
    # first coordinates sorted: -40, 0.9, 1.0, 1.0, 1.1, 1.2 -> (1.0 + 1.0) / 2
    # second: -40, 0.9, 1.0, 1.0, 1.1, 1.2 -> 1.0
    assert aggregate(registry, "median")["w"].tolist() == pytest.approx([1.0, 1.0])
    odd = updates([0.0, 5.0], [1.0, -3.0], [7.0, 2.0])
    assert aggregate(registry, "median", received=odd)["w"].tolist() == pytest.approx([1.0, 2.0])


def test_trimmed_mean_drops_the_extremes_of_each_coordinate(registry):
    # trim floor(0.2 * 6) = 1 at each end: each coordinate the mean of 0.9, 1.0, 1.0, 1.1
    new = aggregate(registry, "trimmed_mean", {"trim_fraction": 0.2})
    assert new["w"].tolist() == pytest.approx([1.0, 1.0])
    five = updates([0.0, 5.0], [1.0, -3.0], [7.0, 2.0], [2.0, 2.0], [3.0, 9.0])
    # sorted 0 1 2 3 7 -> mean(1, 2, 3); sorted -3 2 2 5 9 -> mean(2, 2, 5)
    new = aggregate(registry, "trimmed_mean", {"trim_fraction": 0.2}, five)
    assert new["w"].tolist() == pytest.approx([2.0, 3.0])


def test_norm_bounding_clips_then_averages_by_examples(registry):
    received = updates([3.0, 4.0], [0.3, 0.4], examples=[10, 30])
    new = aggregate(registry, "norm_bounding", {"norm_bound": 1.0}, received)
    # [3, 4] clipped to [0.6, 0.8]; 0.25 * [0.6, 0.8] + 0.75 * [0.3, 0.4]
    assert new["w"].tolist() == pytest.approx([0.375, 0.5])


def test_norm_bounding_noise_is_seeded_and_has_its_spread(registry):
    big = {"w": torch.zeros(100_000)}
    received = [ClientUpdate(0, 1, {"w": torch.zeros(100_000)})]
    draws = []
    for _ in range(2):
        strategy = registry.create("strategy", "norm_bounding", {"noise_stddev": 0.01})
        fresh = ServerRound(0, 1, 1.0, np.random.default_rng(3))
        draws.append(strategy.aggregate(big, received, fresh)["w"])
    assert torch.equal(draws[0], draws[1])  # same round seed, same noise
    assert float(draws[0].std()) == pytest.approx(0.01, rel=0.02)


@pytest.mark.parametrize("name", ["krum", "multi_krum", "median", "trimmed_mean", "norm_bounding"])
def test_every_rule_trains_on_top_k_sparsified_updates(registry, name):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(200, 6, generator=generator)
    labels = (inputs[:, 0] > 0).long()
    data = tiny_data(inputs, labels, 5, 2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    federation = FederationConfig(num_clients=5, rounds=8, fraction=1.0, batch_size=8)
    run = FederatedRun(
        data=data,
        federation=federation,
        strategy=registry.create("strategy", name),
        downlink_codec=registry.create("codec", "float32"),
        uplink_codec=registry.create("codec", "topk", {"fraction": 0.5}),
        seed=0,
    )
    result = run_federated(model, run)
    assert result.uplink_bytes < 8 * 5 * 4 * (12 + 2)  # sparse payloads, under float32 size
    changed = result.weights["0.weight"] - before["0.weight"]
    assert torch.isfinite(changed).all() and float(changed.abs().sum()) > 0
    model.load_state_dict(result.weights)
    assert float((model(inputs).argmax(1) == labels).float().mean()) > 0.7
