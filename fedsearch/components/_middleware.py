"""Middleware components: transforms of the payloads between the server and the channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from fedsearch.components._base import Component, Weights


@dataclass(frozen=True)
class PayloadContext:
    """Where a middleware hook runs.

    Attributes:
        round: Index of the federated round, from 0.
        client: The client sending or receiving; None for a broadcast.
        seed: A seed for this round and client, derived from the trial's seed;
            draw noise from ``generator()`` (never the global RNG).
        state: This middleware's state for ``client`` (what its
            ``client_state`` returned), kept by the runtime across rounds;
            None on the server side of a broadcast and for stateless middleware.
        num_clients: How many clients exist (0 when unknown).
        trial_seed: The trial's seed, the same for every call of a run (to
            make choices that hold for the whole run, such as which clients
            are malicious).
    """

    round: int
    client: int | None
    seed: int
    state: Any = None
    num_clients: int = 0
    trial_seed: int = 0

    def generator(self) -> torch.Generator:
        """A fresh generator seeded with ``seed``: same trial, same draws."""
        return torch.Generator().manual_seed(self.seed)


class Middleware(Component):
    """A transform of what crosses the channel, in the manner of Flower's mods.

    Client-side hooks run on a client, server-side hooks on the server; the
    channel encodes and counts what the hooks return, so their bytes are
    counted after them. Call order, each round, for a study's middleware list
    ``[m1, m2, ...]`` (each hook in list order):

    0. Once per client, before the first round: ``on_client_data(inputs,
       labels, context)`` on that client's own training examples (data
       poisoning: label flipping, backdoor triggers); ``context.round`` is -1.
    1. Server, per downlink payload: ``on_server_send(weights, context)``
       (``context.client`` is None for the broadcast of ``downlink = "model"``,
       the recipient in delta mode); then the channel.
    2. Client ``k``: ``on_client_receive(weights, context)`` on what it decoded;
       it trains from the result.
    3. Client ``k``: ``on_client_send(update, context)`` on its update (local
       weights minus the weights it trained from): clip, add noise, mask,
       poison; then the channel.
    4. Server: ``on_server_receive(update, context)`` on each decoded update,
       before the strategy aggregates.

    Per-client state: ``client_state(client)`` is called the first time a
    client takes part; the runtime keeps the object for that client only
    (``context.state``) and discards it when the run ends.

    After the run, ``test_report(model, inputs, labels)`` measures figures on
    the test split that the trial records as user attributes and never
    searches (a backdoor's attack success rate).

    Every hook defaults to the identity; override the ones you need. Hooks
    must not modify their input in place.
    """

    kind: ClassVar[str] = "middleware"

    def client_state(self, client: int) -> Any:
        """A fresh per-client state for ``client`` (None: the middleware keeps none)."""
        return None

    def on_client_data(
        self, inputs: torch.Tensor, labels: torch.Tensor, context: PayloadContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Client side, once before training: the client's own examples and labels."""
        return inputs, labels

    def test_report(
        self, model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, float]:
        """Figures measured on the test split after the run (user attributes, never searched)."""
        return {}

    def on_server_send(self, weights: Weights, context: PayloadContext) -> Weights:
        """Server side, before the downlink payload is encoded."""
        return weights

    def on_client_receive(self, weights: Weights, context: PayloadContext) -> Weights:
        """Client side, on the decoded downlink payload."""
        return weights

    def on_client_send(self, update: Weights, context: PayloadContext) -> Weights:
        """Client side, on the update before it is encoded."""
        return update

    def on_server_receive(self, update: Weights, context: PayloadContext) -> Weights:
        """Server side, on a decoded update before aggregation."""
        return update
