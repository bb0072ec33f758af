"""The uplink under a secure aggregator: the server gets one weighted mean, never an update."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedsearch.components import (
    Channel,
    ClientUpdate,
    SecureAggregate,
    SecureAggregator,
    Weights,
)

AGGREGATE_CLIENT = -1
"""``client_id`` of the one update a strategy receives under secure aggregation."""


def protocol_seed(seed: int, round_index: int) -> int:
    """A seed for one round of a secure aggregation protocol, derived from the trial seed."""
    return int(np.random.SeedSequence([seed, round_index, 0x5EC]).generate_state(1)[0])


def secure_update(
    secure: SecureAggregator,
    channel: Channel,
    deltas: Mapping[int, Weights],
    weights: Mapping[int, int],
    round_index: int,
    seed: int,
) -> tuple[ClientUpdate, SecureAggregate]:
    """Run ``secure``'s protocol over ``channel``; the strategy's one update and the outcome.

    The update carries the survivors' weighted mean delta and their total
    weight, so a strategy that averages (FedAvg and its server optimizers)
    takes exactly that mean.
    """
    outcome = secure.aggregate(
        channel,
        deltas,
        weights,
        round_index=round_index,
        seed=protocol_seed(seed, round_index),
    )
    update = ClientUpdate(
        client_id=AGGREGATE_CLIENT,
        num_examples=max(1, round(outcome.total_weight)),
        delta=outcome.mean_delta,
        metrics={"survivors": float(len(outcome.survivors))},
    )
    return update, outcome
