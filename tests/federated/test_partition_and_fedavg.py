"""Partitions are deterministic with the right label statistics; FedAvg is the weighted mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedsearch import ClientUpdate, ConfigError, ServerRound

LABELS = np.repeat(np.arange(10), 50)


def partition(registry, name, seed=0, num_clients=10, **params):
    partitioner = registry.create("partitioner", name, params)
    return partitioner.partition(LABELS, num_clients, np.random.default_rng(seed))


@pytest.mark.parametrize(("name", "params"), [("iid", {}), ("dirichlet", {"alpha": 0.1})])
def test_partition_covers_every_example_once_and_is_deterministic(registry, name, params):
    shares = partition(registry, name, **params)
    joined = np.concatenate(shares)
    assert sorted(joined.tolist()) == list(range(len(LABELS)))
    assert all(len(share) >= 1 for share in shares)
    again = partition(registry, name, **params)
    assert all(np.array_equal(a, b) for a, b in zip(shares, again, strict=True))
    other_seed = partition(registry, name, seed=1, **params)
    assert not all(np.array_equal(a, b) for a, b in zip(shares, other_seed, strict=True))


def test_iid_gives_equal_shares_with_all_labels(registry):
    shares = partition(registry, "iid")
    assert {len(share) for share in shares} == {50}
    assert np.mean([len(np.unique(LABELS[share])) for share in shares]) > 9


def test_small_dirichlet_alpha_skews_labels(registry):
    skewed = partition(registry, "dirichlet", alpha=0.05)
    mild = partition(registry, "dirichlet", alpha=100.0)
    classes = lambda shares: np.mean([len(np.unique(LABELS[s])) for s in shares])  # noqa: E731
    assert classes(skewed) < 4 < 9 < classes(mild)


def test_more_clients_than_examples_is_a_config_error(registry):
    with pytest.raises(ConfigError, match=r"lower federation\.num_clients"):
        partition(registry, "iid", num_clients=501)


def test_fedavg_is_the_example_weighted_mean(registry):
    strategy = registry.create("strategy", "fedavg")
    weights = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5])}
    updates = [
        ClientUpdate(0, 10, {"w": torch.tensor([1.0, 0.0]), "b": torch.tensor([1.0])}),
        ClientUpdate(1, 30, {"w": torch.tensor([-1.0, 4.0]), "b": torch.tensor([-1.0])}),
    ]
    server_round = ServerRound(0, 1, 1.0, np.random.default_rng(0))
    new = strategy.aggregate(weights, updates, server_round)
    # w: [1, 2] + 0.25*[1, 0] + 0.75*[-1, 4] = [0.5, 5]; b: 0.5 + 0.25 - 0.75 = 0
    assert torch.allclose(new["w"], torch.tensor([0.5, 5.0]))
    assert torch.allclose(new["b"], torch.tensor([0.0]))
    assert torch.equal(weights["w"], torch.tensor([1.0, 2.0])), "aggregate must not mutate"


def test_client_sampling_takes_the_fraction(registry):
    strategy = registry.create("strategy", "fedavg")
    rng = np.random.default_rng(0)
    chosen = strategy.select_clients(100, ServerRound(0, 5, 0.1, rng))
    assert len(chosen) == 10 == len(set(chosen))
    assert strategy.select_clients(3, ServerRound(0, 5, 0.01, rng)) != []
