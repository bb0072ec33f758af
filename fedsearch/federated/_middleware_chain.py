"""Running a study's middleware in order around the channel, with per-client state."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedsearch.components import Middleware, PayloadContext, Weights
from fedsearch.federated._client_state import ClientStates

HOOKS = ("on_server_send", "on_client_receive", "on_client_send", "on_server_receive")
CLIENT_SIDE = ("on_client_receive", "on_client_send")


def payload_seed(seed: int, round_index: int, client: int | None, hook: str) -> int:
    """A seed for one hook call, derived from the trial seed, round, client and hook."""
    entropy = [seed, round_index, -1 if client is None else client, HOOKS.index(hook)]
    return int(np.random.SeedSequence([value + 2**31 for value in entropy]).generate_state(1)[0])


class MiddlewareChain:
    """A study's middleware list, applied hook by hook in list order.

    Client-side hooks get the client's own state (``Middleware.client_state``,
    kept here per client); server-side hooks get none.

    Args:
        middleware: Built middleware, in the order the study lists them.
        seed: The trial's seed (each call's ``PayloadContext.seed`` derives from it).
        num_clients: How many clients exist (``PayloadContext.num_clients``).
    """

    def __init__(self, middleware: Sequence[Middleware], seed: int, num_clients: int = 0) -> None:
        self.middleware = tuple(middleware)
        self.seed = seed
        self.num_clients = num_clients
        self.states = ClientStates([item.client_state for item in self.middleware])

    def __bool__(self) -> bool:
        return bool(self.middleware)

    def apply(
        self, hook: str, tensors: Weights, *, round_index: int, client: int | None
    ) -> Weights:
        """Pass ``tensors`` through ``hook`` of every middleware, in order."""
        if not self.middleware:
            return tensors
        states = self.states.of(client) if hook in CLIENT_SIDE and client is not None else ()
        seed = payload_seed(self.seed, round_index, client, hook)
        for position, item in enumerate(self.middleware):
            state = states[position] if states else None
            context = PayloadContext(
                round_index, client, seed + position, state, self.num_clients, self.seed
            )
            tensors = getattr(item, hook)(tensors, context)
        return tensors

    def close(self) -> None:
        """Discard every client's middleware state."""
        self.states.discard()
