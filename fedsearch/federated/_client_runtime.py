"""The clients' side of a round, like Flower's ClientApp: data, per-client state, training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedsearch.components import Weights
from fedsearch.federated._client_state import ClientStates
from fedsearch.federated._training import ClientJob, LocalTrainer


@dataclass(frozen=True)
class ClientFit:
    """What a round's clients produced.

    Attributes:
        weights: Per client, its weights after local training.
        losses: Per client, its mean training loss.
        execution: The path that trained them (``sequential``, ``vectorized``,
            or both joined by ``+`` when groups went different ways).
    """

    weights: dict[int, Weights]
    losses: dict[int, float]
    execution: str


class ClientRuntime:
    """Trains clients from what they received, with their own data and their own state.

    The runtime holds each client's compressor states (``Compressor
    .client_state``), creates them the first time the client trains, hands a
    client only its own, and discards them with ``close``. Clients that
    received the same weights object (a broadcast) are trained together in one
    call of the trainer, which may vectorize them; the others one by one.

    Args:
        trainer: Local SGD on the shared model and data.
        client_indices: Per client, its training-example indices.
    """

    def __init__(self, trainer: LocalTrainer, client_indices: Sequence[np.ndarray]) -> None:
        self.trainer = trainer
        self.client_indices = client_indices
        self.states = ClientStates([compressor.client_state for compressor in trainer.compressors])

    @property
    def num_clients(self) -> int:
        """How many clients exist."""
        return len(self.client_indices)

    def num_examples(self, client_id: int) -> int:
        """How many training examples ``client_id`` holds."""
        return len(self.client_indices[client_id])

    def fit(
        self, received: Mapping[int, Weights], *, round_index: int, proximal_mu: float = 0.0
    ) -> ClientFit:
        """Train every client of ``received`` from the weights it received."""
        groups: dict[int, list[int]] = {}
        for client_id, weights in received.items():
            groups.setdefault(id(weights), []).append(client_id)
        trained: dict[int, Weights] = {}
        losses: dict[int, float] = {}
        paths: list[str] = []
        for members in groups.values():
            jobs = [
                ClientJob(client, self.client_indices[client], self.states.of(client))
                for client in members
            ]
            outcome = self.trainer.train_clients(
                received[members[0]], jobs, round_index=round_index, proximal_mu=proximal_mu
            )
            for client, (weights, loss) in zip(members, outcome.results, strict=True):
                trained[client], losses[client] = weights, loss
            if outcome.execution not in paths:
                paths.append(outcome.execution)
        return ClientFit(trained, losses, "+".join(paths))

    def close(self) -> None:
        """Discard every client's state."""
        self.states.discard()
