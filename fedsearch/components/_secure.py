"""Secure aggregator components: the uplink as a protocol the server cannot read one update of."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from fedsearch.components._base import Component, Weights
from fedsearch.components._channel import Channel


@dataclass(frozen=True)
class SecureAggregate:
    """What the server learns from one round of secure aggregation: a weighted mean, no update.

    Attributes:
        mean_delta: ``sum_k w_k * delta_k / sum_k w_k`` over the survivors, as the
            protocol's precision (quantization, CKKS noise) leaves it.
        total_weight: ``sum_k w_k`` over the survivors.
        survivors: The clients whose updates are in the sum.
        dropped: The clients that dropped out during the round's protocol.
        plain_bytes: What the survivors' updates would take as plain float32
            (4 bytes a value), the baseline the protocol's overhead is measured against.
    """

    mean_delta: Weights
    total_weight: float
    survivors: tuple[int, ...]
    dropped: tuple[int, ...] = ()
    plain_bytes: int = 0


class SecureAggregator(Component):
    """Secure aggregation or homomorphic encryption of a round's client updates.

    It replaces the plain uplink: once per round, after every client of the
    round has trained and applied its ``on_client_send`` middleware, the grid
    calls ``aggregate`` with each client's update and weight (its number of
    examples). The aggregator plays every party of its protocol: it encodes
    every message to bytes and sends it with ``channel.transfer_bytes`` (the
    server only ever receives what crossed the channel), and returns the
    weighted mean the server learns. The study's strategy then aggregates that
    one mean as if a single client had sent it.

    Required: ``aggregate``. ``metric`` names the trial attribute its overhead
    is recorded under. Randomness (keys, dropouts, masks) comes from the
    ``seed`` argument or the operating system's CSPRNG, never the global RNG.
    """

    kind: ClassVar[str] = "secure_aggregator"
    metric: ClassVar[str] = "secure_aggregation_overhead_bytes"
    """Trial attribute of the protocol's bytes beyond a plain float32 uplink."""

    def check(self, clients_per_round: int) -> None:
        """Refuse settings that cannot work with ``clients_per_round`` clients a round.

        Raises:
            ValueError: Naming the problem and the fix (for example a field too
                small to hold the sum without wrapping around).
        """

    @abstractmethod
    def aggregate(
        self,
        channel: Channel,
        updates: Mapping[int, Weights],
        weights: Mapping[int, int],
        *,
        round_index: int,
        seed: int,
    ) -> SecureAggregate:
        """Run one round of the protocol over ``channel``.

        Args:
            channel: Counts and delivers every message.
            updates: Per participating client, its update (what it would send plainly).
            weights: Per client, its aggregation weight (number of examples).
            round_index: The round, from 0.
            seed: Derived from the trial's seed and the round (dropouts, graphs).

        Returns:
            The survivors' weighted mean update and who dropped.
        """
