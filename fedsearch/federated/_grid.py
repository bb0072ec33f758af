"""One federated round, shaped like Flower's Grid: server, middleware, channel, clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedsearch.components import (
    Channel,
    ClientUpdate,
    SecureAggregator,
    ServerRound,
    Strategy,
    Traffic,
    Weights,
)
from fedsearch.federated._client_runtime import ClientRuntime
from fedsearch.federated._downlink import Downlink
from fedsearch.federated._middleware_chain import MiddlewareChain
from fedsearch.federated._secure_uplink import secure_update


@dataclass(frozen=True)
class RoundMetrics:
    """What one round measured.

    Attributes:
        train_loss: Mean over the round's clients of their mean training loss (NaN
            when no client took part).
        execution: The path that trained the clients.
        traffic: The round's bytes, as counted by the channel.
        clients: The clients that took part.
        dropped: The clients that dropped out of the secure aggregation protocol.
        plain_bytes: Under secure aggregation, what the survivors' updates
            would take as plain float32 (the baseline of its overhead); else 0.
    """

    train_loss: float
    execution: str
    traffic: Traffic
    clients: tuple[int, ...] = ()
    dropped: tuple[int, ...] = ()
    plain_bytes: int = 0


@dataclass(frozen=True)
class RoundResult:
    """The new global weights and the round's metrics."""

    weights: Weights
    metrics: RoundMetrics


@dataclass(frozen=True)
class FitReplies:
    """The decoded updates of a round's clients and the round's metrics."""

    updates: list[ClientUpdate]
    metrics: RoundMetrics


class SimulatedGrid:
    """Delivers the server's weights to clients and brings their updates back.

    Per round: server middleware and the downlink protocol send the weights
    through the channel; each client applies its receive middleware; the
    client runtime trains; each client's update (local weights minus the
    weights it trained from) passes its send middleware, the channel, and the
    server's receive middleware. The channel counts every payload after the
    middleware that produced it. With a secure aggregator, the updates go
    through its protocol instead and the server receives only their weighted
    mean, as one update (``client_id`` -1).

    Args:
        channel: Encodes, counts and decodes.
        clients: The client runtime.
        downlink: The server's downlink protocol (model or delta).
        middleware: The study's middleware, in order.
        secure: The secure aggregation protocol of the uplink, if any.
    """

    def __init__(
        self,
        channel: Channel,
        clients: ClientRuntime,
        downlink: Downlink,
        middleware: MiddlewareChain,
        secure: SecureAggregator | None = None,
    ) -> None:
        self.channel = channel
        self.clients = clients
        self.downlink = downlink
        self.middleware = middleware
        self.secure = secure

    @property
    def num_clients(self) -> int:
        """How many clients exist."""
        return self.clients.num_clients

    def fit(
        self,
        client_ids: Sequence[int],
        weights: Weights,
        config: Mapping[str, float],
        round_index: int,
    ) -> FitReplies:
        """Train ``client_ids`` from ``weights``; return their decoded updates and the metrics."""
        chain = self.middleware

        def on_send(payload: Weights, client: int | None) -> Weights:
            return chain.apply("on_server_send", payload, round_index=round_index, client=client)

        received = self.downlink.send(self.channel, client_ids, weights, on_send if chain else None)
        if chain:
            received = {
                client: chain.apply(
                    "on_client_receive", model, round_index=round_index, client=client
                )
                for client, model in received.items()
            }
        fit = self.clients.fit(
            received,
            round_index=round_index,
            proximal_mu=float(config.get("proximal_mu", 0.0)),
        )
        deltas = {}
        for client in client_ids:
            start, local = received[client], fit.weights[client]
            delta = {name: local[name] - start[name] for name in start}
            deltas[client] = chain.apply(
                "on_client_send", delta, round_index=round_index, client=client
            )
        if self.secure is not None:
            weights_of = {client: self.clients.num_examples(client) for client in client_ids}
            seed = self.middleware.seed
            update, outcome = secure_update(
                self.secure, self.channel, deltas, weights_of, round_index, seed
            )
            return FitReplies(
                [update],
                RoundMetrics(
                    train_loss=float(np.mean([fit.losses[client] for client in client_ids])),
                    execution=fit.execution,
                    traffic=self.channel.end_round(),
                    clients=tuple(client_ids),
                    dropped=outcome.dropped,
                    plain_bytes=outcome.plain_bytes,
                ),
            )
        updates = []
        for client in client_ids:
            delta = deltas[client]
            decoded = self.channel.transfer(delta, direction="uplink", client=client)
            decoded = chain.apply(
                "on_server_receive", decoded, round_index=round_index, client=client
            )
            updates.append(
                ClientUpdate(
                    client_id=client,
                    num_examples=self.clients.num_examples(client),
                    delta=decoded,
                    metrics={"train_loss": fit.losses[client]},
                )
            )
        metrics = RoundMetrics(
            train_loss=float(np.mean([fit.losses[client] for client in client_ids]))
            if client_ids  # a Poisson-sampled round may have no clients
            else float("nan"),
            execution=fit.execution,
            traffic=self.channel.end_round(),
            clients=tuple(client_ids),
        )
        return FitReplies(updates, metrics)

    def close(self) -> None:
        """Discard every client's state (compressors and middleware)."""
        self.clients.close()
        self.middleware.close()


def run_round(
    strategy: Strategy, grid: SimulatedGrid, weights: Weights, server_round: ServerRound
) -> RoundResult:
    """One round: select, configure, fit through the grid, aggregate.

    Returns:
        The new global weights and the round's metrics.
    """
    client_ids = strategy.select_clients(grid.num_clients, server_round)
    replies = grid.fit(client_ids, weights, strategy.fit_config(server_round), server_round.index)
    new_weights = strategy.aggregate(weights, replies.updates, server_round)
    return RoundResult(new_weights, replies.metrics)
