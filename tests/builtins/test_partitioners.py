"""Shards, natural and quantity-skew partitions; the label statistics recorded with a trial."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedsearch import ConfigError, DatasetSplits
from fedsearch.federated import prepare_federated_data

LABELS = np.repeat(np.arange(10), 60)
GROUPS = np.arange(600) % 15


def partition(registry, name, seed=0, num_clients=10, groups=None, **params):
    partitioner = registry.create("partitioner", name, params)
    return partitioner.partition(LABELS, num_clients, np.random.default_rng(seed), groups=groups)


@pytest.mark.parametrize(
    ("name", "params", "groups"),
    [
        ("shards", {}, None),
        ("shards", {"shards_per_client": 3}, None),
        ("natural", {}, GROUPS),
        ("quantity_skew", {"alpha": 0.3}, None),
    ],
)
def test_partition_covers_every_example_once_and_is_deterministic(registry, name, params, groups):
    shares = partition(registry, name, groups=groups, **params)
    assert sorted(np.concatenate(shares).tolist()) == list(range(len(LABELS)))
    assert all(len(share) >= 1 for share in shares)
    again = partition(registry, name, groups=groups, **params)
    assert all(np.array_equal(a, b) for a, b in zip(shares, again, strict=True))
    other = partition(registry, name, seed=1, groups=groups, **params)
    assert not all(np.array_equal(a, b) for a, b in zip(shares, other, strict=True))


def test_two_shards_per_client_give_at_most_two_labels_each(registry):
    shares = partition(registry, "shards")
    # 600 examples, 20 shards of 30: each shard holds one label (60 per label).
    assert {len(share) for share in shares} == {60}
    assert all(len(np.unique(LABELS[share])) <= 2 for share in shares)
    assert np.mean([len(np.unique(LABELS[share])) for share in shares]) > 1.0


def test_natural_partition_keeps_writers_whole(registry):
    one_each = partition(registry, "natural", num_clients=15, groups=GROUPS)
    assert [np.unique(GROUPS[share]).tolist() for share in one_each] == [[g] for g in range(15)]
    merged = partition(registry, "natural", num_clients=4, groups=GROUPS)
    writers = [set(np.unique(GROUPS[share]).tolist()) for share in merged]
    assert sorted(len(w) for w in writers) == [3, 4, 4, 4]
    assert set().union(*writers) == set(range(15))


def test_natural_partition_errors(registry):
    with pytest.raises(ConfigError, match="needs a dataset with natural groups"):
        partition(registry, "natural")
    with pytest.raises(ConfigError, match="at most 15"):
        partition(registry, "natural", num_clients=16, groups=GROUPS)


def test_quantity_skew_sizes_spread_with_small_alpha(registry):
    skewed = [len(s) for s in partition(registry, "quantity_skew", alpha=0.1)]
    even = [len(s) for s in partition(registry, "quantity_skew", alpha=1000.0)]
    assert np.std(skewed) > 5 * np.std(even)
    assert max(even) - min(even) < 15


def test_partition_summary_records_label_statistics(registry):
    generator = torch.Generator().manual_seed(0)
    splits = DatasetSplits(
        train_inputs=torch.rand(600, 4, generator=generator),
        train_labels=torch.from_numpy(LABELS),
        test_inputs=torch.rand(10, 4),
        test_labels=torch.arange(10),
        num_classes=10,
    )
    data = prepare_federated_data(
        splits,
        val_fraction=0.1,
        partitioner=registry.create("partitioner", "shards"),
        num_clients=10,
        seed=0,
    )
    summary = data.partition_summary()
    counts = np.array(summary["label_counts"])
    assert counts.shape == (10, 10)
    assert counts.sum() == summary["examples"] == 540
    for client, indices in enumerate(data.client_indices):
        expected = np.bincount(data.train_labels.numpy()[indices], minlength=10)
        assert counts[client].tolist() == expected.tolist()
    assert summary["max_classes_per_client"] <= 3
    assert summary["mean_top_label_share"] >= 0.5
