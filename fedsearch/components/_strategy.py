"""Strategy components: server-side client selection and aggregation."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
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


class Strategy(Component):
    """Server aggregation, in the manner of Flower's ``Strategy``.

    Call order, once per round, driven by the simulation's round
    (``fedsearch.federated.run_round``):

    1. ``select_clients``: which clients take part (uniform sampling by default);
    2. ``fit_config``: local-training settings sent along (none by default);
    3. the grid delivers the weights through middleware and the channel, the
       clients train, their updates come back the same way, decoded;
    4. ``aggregate``: the new global weights.

    Required: ``aggregate``. Strategies never touch clients or count bytes.
    """

    kind: ClassVar[str] = "strategy"

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
