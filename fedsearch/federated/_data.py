"""Splitting a dataset into train/validation/test and dealing it out to clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fedsearch._errors import ConfigError
from fedsearch.components import DatasetSplits, Partitioner

LABEL_COUNTS_LIMIT = 20_000
"""Largest clients x classes table kept in the partition summary."""


@dataclass(frozen=True)
class FederatedData:
    """One copy of the data, shared by every client, plus each client's indices.

    Attributes:
        train_inputs: Training examples (validation examples removed).
        train_labels: Their labels.
        val_inputs: Validation examples, carved out of the training part; the
            accuracy objective is measured on them.
        val_labels: Their labels.
        test_inputs: Test examples; never seen by the search.
        test_labels: Their labels.
        client_indices: Per client, indices into ``train_inputs``.
        num_classes: Number of classes.
    """

    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    val_inputs: torch.Tensor
    val_labels: torch.Tensor
    test_inputs: torch.Tensor
    test_labels: torch.Tensor
    client_indices: list[np.ndarray]
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(self.train_inputs.shape[1:])

    def partition_summary(self) -> dict[str, Any]:
        """Sizes and label spread of the clients, for the record.

        Per-client label counts are included while they stay small (at most
        ``LABEL_COUNTS_LIMIT`` numbers); the summary figures always are.
        """
        sizes = np.array([len(indices) for indices in self.client_indices])
        counts = self.label_counts()
        present = (counts > 0).sum(axis=1)
        shares = counts / np.maximum(sizes[:, None], 1)
        summary: dict[str, Any] = {
            "clients": len(sizes),
            "examples": int(sizes.sum()),
            "min_examples": int(sizes.min()),
            "max_examples": int(sizes.max()),
            "mean_examples": float(sizes.mean()),
            "std_examples": float(sizes.std()),
            "mean_classes_per_client": float(np.mean(present)),
            "min_classes_per_client": int(present.min()),
            "max_classes_per_client": int(present.max()),
            "mean_top_label_share": float(shares.max(axis=1).mean()),
        }
        if counts.size <= LABEL_COUNTS_LIMIT:
            summary["label_counts"] = counts.tolist()
        return summary

    def label_counts(self) -> np.ndarray:
        """Examples of each class held by each client, shape ``(clients, classes)``."""
        labels = self.train_labels.numpy()
        return np.stack(
            [
                np.bincount(labels[indices], minlength=self.num_classes)
                for indices in self.client_indices
            ]
        )


def prepare_federated_data(
    splits: DatasetSplits,
    *,
    val_fraction: float,
    partitioner: Partitioner,
    num_clients: int,
    seed: int,
) -> FederatedData:
    """Carve a validation split, then partition the rest among clients.

    The split is stratified by label unless some class has a single example.

    Raises:
        ConfigError: The split leaves too few training examples for the
            clients, or too few examples on one side to stratify.
    """
    labels = splits.train_labels.numpy()
    positions = np.arange(len(labels))
    class_sizes = np.bincount(labels)
    stratify = labels if class_sizes[class_sizes > 0].min() >= 2 else None
    try:
        # imported on use: scikit-learn takes about 0.7 s to import
        from sklearn.model_selection import train_test_split

        train_pos, val_pos = train_test_split(
            positions, test_size=val_fraction, random_state=seed, stratify=stratify
        )
    except ValueError as error:
        raise ConfigError(
            f"cannot carve a validation split of {val_fraction} from {len(labels)} training "
            f"examples ({error}); choose a val_fraction that leaves examples of every class "
            "on both sides",
            field="dataset.val_fraction",
        ) from None
    if len(train_pos) < num_clients:
        raise ConfigError(
            f"a validation split of {val_fraction} leaves {len(train_pos)} training examples "
            f"for {num_clients} clients; lower dataset.val_fraction or federation.num_clients",
            field="federation.num_clients" if num_clients > len(labels) else "dataset.val_fraction",
        )
    train_pos, val_pos = np.sort(train_pos), np.sort(val_pos)
    groups = splits.train_groups[train_pos] if splits.train_groups is not None else None
    rng = np.random.default_rng(seed)
    clients = partitioner.partition(labels[train_pos], num_clients, rng, groups=groups)
    return FederatedData(
        train_inputs=splits.train_inputs[train_pos].contiguous(),
        train_labels=splits.train_labels[train_pos].contiguous(),
        val_inputs=splits.train_inputs[val_pos].contiguous(),
        val_labels=splits.train_labels[val_pos].contiguous(),
        test_inputs=splits.test_inputs,
        test_labels=splits.test_labels,
        client_indices=[np.asarray(indices, dtype=np.int64) for indices in clients],
        num_classes=splits.num_classes,
    )
