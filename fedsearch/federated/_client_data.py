"""Each client's own training examples, as the study's middleware leaves them (data poisoning)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fedsearch.components import Middleware, PayloadContext

DATA_ROUND = -1
"""``PayloadContext.round`` of ``on_client_data`` (it runs before the first round)."""


def transforms_data(middleware: Sequence[Middleware]) -> bool:
    """Whether any middleware overrides ``on_client_data``."""
    return any(type(item).on_client_data is not Middleware.on_client_data for item in middleware)


def client_training_data(
    inputs: torch.Tensor,
    labels: torch.Tensor,
    client_indices: Sequence[np.ndarray],
    middleware: Sequence[Middleware],
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training tensors after every client's ``on_client_data``.

    Every client passes its own examples (and only those) through each
    middleware's hook, in list order; the shared tensors are copied only when
    some middleware transforms data, and the clients' slices are written back
    into the copy.

    Args:
        inputs: All training inputs (clients hold disjoint index sets).
        labels: All training labels.
        client_indices: Per client, its example indices.
        middleware: The study's middleware, in order.
        seed: The trial's seed.
    """
    if not transforms_data(middleware):
        return inputs, labels
    inputs, labels = inputs.clone(), labels.clone()
    for client, indices in enumerate(client_indices):
        index = torch.as_tensor(indices, dtype=torch.long)
        mine, own_labels = inputs[index], labels[index]
        for position, item in enumerate(middleware):
            entropy = [seed, client + 1, position, 2**20]
            draw = int(np.random.SeedSequence(entropy).generate_state(1)[0])
            context = PayloadContext(
                DATA_ROUND, client, draw, num_clients=len(client_indices), trial_seed=seed
            )
            mine, own_labels = item.on_client_data(mine, own_labels, context)
        inputs[index], labels[index] = mine.to(inputs.dtype), own_labels.to(labels.dtype)
    return inputs, labels
