"""Strategy components: server-side aggregation, and the channel they talk to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from fedsearch.components._base import Component, Weights


@dataclass(frozen=True)
class ClientUpdate:
    """What the server receives from one client after local training.

    Attributes:
        client_id: Which client trained.
        num_examples: How many training examples the client holds.
        delta: Local weights minus the weights the client received, as decoded
            from the uplink payload (so it carries any codec loss).
        metrics: Client-side figures such as the mean training loss.
    """

    client_id: int
    num_examples: int
    delta: Weights
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerRound:
    """Where the federation stands when a strategy runs a round.

    Attributes:
        index: Round number, starting at 0.
        num_rounds: Total number of rounds.
        fraction: Fraction of clients to sample this round.
        rng: Random generator for client sampling (seeded per study).
    """

    index: int
    num_rounds: int
    fraction: float
    rng: np.random.Generator


class Channel(ABC):
    """The only way between the server and the clients.

    The channel encodes every payload with the configured codecs, runs local
    training on the selected clients, and counts the length of every encoded
    payload that crosses it: the single place where communication is measured.
    """

    @property
    @abstractmethod
    def num_clients(self) -> int:
        """How many clients exist."""

    @abstractmethod
    def train(
        self,
        client_ids: Sequence[int],
        weights: Weights,
        config: Mapping[str, float] | None = None,
    ) -> list[ClientUpdate]:
        """Send ``weights`` to the clients, train them locally, return their updates.

        ``config`` carries the strategy's local-training settings (see
        ``Strategy.fit_config``), such as FedProx's ``proximal_mu``.
        """


class Strategy(Component):
    """Server aggregation, in the manner of Flower's ``Strategy``.

    Call order, once per round, driven by the simulation through ``run_round``:

    1. ``select_clients``: which clients take part (uniform sampling by default);
    2. ``fit_config``: local-training settings sent along (none by default);
    3. ``channel.train``: the channel delivers the weights and returns decoded updates;
    4. ``aggregate``: the new global weights.

    Required: ``aggregate``. Strategies never touch clients or count bytes.
    """

    kind: ClassVar[str] = "strategy"

    def run_round(self, channel: Channel, weights: Weights, server_round: ServerRound) -> Weights:
        """Run one round and return the new global weights."""
        client_ids = self.select_clients(channel.num_clients, server_round)
        updates = channel.train(client_ids, weights, self.fit_config(server_round))
        return self.aggregate(weights, updates, server_round)

    def fit_config(self, server_round: ServerRound) -> dict[str, float]:
        """Local-training settings for this round's clients, e.g. ``{"proximal_mu": 0.01}``."""
        return {}

    def select_clients(self, num_clients: int, server_round: ServerRound) -> list[int]:
        """Sample ``max(1, round(fraction * num_clients))`` clients, without replacement."""
        count = max(1, round(server_round.fraction * num_clients))
        chosen = server_round.rng.choice(num_clients, size=min(count, num_clients), replace=False)
        return sorted(int(client) for client in chosen)

    @abstractmethod
    def aggregate(
        self, weights: Weights, updates: Sequence[ClientUpdate], server_round: ServerRound
    ) -> Weights:
        """Combine the client updates into new global weights.

        Args:
            weights: Global weights sent this round (do not modify in place).
            updates: Decoded updates of the clients that trained.
            server_round: The round being aggregated.

        Returns:
            New global weights with the same names, shapes and dtypes.
        """
