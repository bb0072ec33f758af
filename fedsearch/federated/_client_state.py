"""Per-client state held by the runtime: created on first use, kept per client, discarded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

StateFactory = Callable[[int], Any]
"""``client_state`` of a compressor or middleware: a fresh state for a client id."""


class ClientStates:
    """One tuple of states per client that took part, one entry per plugin.

    Plugins declare what they keep per client (``client_state``); this store
    creates it the first time a client takes part, hands each client only its
    own, and drops everything on ``discard`` (memory grows with the clients
    that took part, never with those that exist).

    Args:
        factories: Per plugin, its ``client_state`` method.
    """

    def __init__(self, factories: Sequence[StateFactory]) -> None:
        self._factories = tuple(factories)
        self._states: dict[int, tuple[Any, ...]] = {}

    def of(self, client: int) -> tuple[Any, ...]:
        """The states of ``client`` (created now if it never took part)."""
        if client not in self._states:
            self._states[client] = tuple(factory(client) for factory in self._factories)
        return self._states[client]

    @property
    def clients(self) -> list[int]:
        """Clients holding state, in the order they first took part."""
        return list(self._states)

    def discard(self) -> None:
        """Forget every client's state (the run is over)."""
        self._states.clear()
