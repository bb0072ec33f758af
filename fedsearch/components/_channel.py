"""The channel contract: transport and accounting between the server and the clients."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from fedsearch.components._base import Weights

Direction = Literal["downlink", "uplink", "one_time"]
"""Server to client (per round), client to server, or a one-time download."""
DIRECTIONS: tuple[Direction, ...] = ("downlink", "uplink", "one_time")


@dataclass(frozen=True)
class Transfer:
    """One payload that crossed the channel: its direction, peer and encoded length."""

    direction: Direction
    client: int | None
    num_bytes: int


@dataclass(frozen=True)
class Traffic:
    """Bytes that crossed the channel, by direction (one round's, or a run's)."""

    downlink: int = 0
    uplink: int = 0
    one_time: int = 0

    @property
    def total(self) -> int:
        """Every byte, both directions, one-time transfers included."""
        return self.downlink + self.uplink + self.one_time

    @classmethod
    def of(cls, transfers: Iterable[Transfer]) -> Traffic:
        """The sums of ``transfers`` by direction."""
        totals = dict.fromkeys(DIRECTIONS, 0)
        for transfer in transfers:
            totals[transfer.direction] += transfer.num_bytes
        return cls(**totals)

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(
            self.downlink + other.downlink,
            self.uplink + other.uplink,
            self.one_time + other.one_time,
        )


class Channel(ABC):
    """The only way between the server and the clients: encode, count, decode.

    The channel is transport and accounting only; it neither trains nor
    aggregates. Call order, each round:

    1. ``transfer(tensors, direction=..., client=...)`` for every payload that
       crosses (the server's model or delta, a client's update, a one-time
       download): the channel encodes it with the codec of that direction,
       counts ``len()`` of the bytes (times ``recipients`` for a broadcast that
       each recipient receives whole) and returns what the other end decodes.
    2. ``end_round()``: the round's bytes as one immutable ``Traffic`` record;
       counting starts afresh for the next round.
    """

    @abstractmethod
    def transfer(
        self,
        tensors: Weights,
        *,
        direction: Direction,
        client: int | None,
        recipients: int = 1,
    ) -> Weights:
        """Encode ``tensors``, count the payload, return the receiver's decoding.

        Args:
            tensors: The payload's tensors.
            direction: ``"downlink"``, ``"uplink"`` or ``"one_time"``.
            client: The client at the other end; None for a broadcast.
            recipients: How many clients receive this same payload.
        """

    @abstractmethod
    def end_round(self) -> Traffic:
        """The bytes of every transfer since the previous call, by direction."""
