"""The channel contract: transport and accounting between the server and the clients."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from fedsearch.components._base import Weights

Direction = Literal["downlink", "uplink", "one_time"]
"""Server to client (per round), client to server, or a one-time download."""
DIRECTIONS: tuple[Direction, ...] = ("downlink", "uplink", "one_time")


@dataclass(frozen=True)
class Transfer:
    """One payload that crossed the channel: its direction, peer, encoded length and name."""

    direction: Direction
    client: int | None
    num_bytes: int
    name: str | None = None


@dataclass(frozen=True)
class Traffic:
    """Bytes that crossed the channel, by direction (one round's, or a run's).

    ``one_time_by_name`` splits ``one_time`` by the names of the downloads
    (``"teacher"``, ``"initial_model"``); treat it as read-only.
    """

    downlink: int = 0
    uplink: int = 0
    one_time: int = 0
    one_time_by_name: dict[str, int] = field(default_factory=dict)
    protocol_by_name: dict[str, int] = field(default_factory=dict)
    """Bytes of named per-round messages (``transfer_bytes``: secure aggregation's stages)."""

    @property
    def total(self) -> int:
        """Every byte, both directions, one-time transfers included."""
        return self.downlink + self.uplink + self.one_time

    @classmethod
    def of(cls, transfers: Iterable[Transfer]) -> Traffic:
        """The sums of ``transfers`` by direction."""
        totals = dict.fromkeys(DIRECTIONS, 0)
        by_name: dict[str, int] = {}
        protocol: dict[str, int] = {}
        for transfer in transfers:
            totals[transfer.direction] += transfer.num_bytes
            if transfer.name is not None:
                named = by_name if transfer.direction == "one_time" else protocol
                named[transfer.name] = named.get(transfer.name, 0) + transfer.num_bytes
        return cls(**totals, one_time_by_name=by_name, protocol_by_name=protocol)

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(
            self.downlink + other.downlink,
            self.uplink + other.uplink,
            self.one_time + other.one_time,
            _merged(self.one_time_by_name, other.one_time_by_name),
            _merged(self.protocol_by_name, other.protocol_by_name),
        )


def _merged(first: dict[str, int], second: dict[str, int]) -> dict[str, int]:
    merged = dict(first)
    for name, num_bytes in second.items():
        merged[name] = merged.get(name, 0) + num_bytes
    return merged


class Channel(ABC):
    """The only way between the server and the clients: encode, count, decode.

    The channel is transport and accounting only; it neither trains nor
    aggregates. Call order, each round:

    1. ``transfer(tensors, direction=..., client=...)`` for every payload that
       crosses (the server's model or delta, a client's update, a one-time
       download): the channel encodes it with the codec of that direction,
       counts ``len()`` of the bytes (times ``recipients`` for a broadcast that
       each recipient receives whole) and returns what the other end decodes.
       Protocol messages that are bytes already (secure aggregation's keys,
       shares, masked inputs, ciphertexts) go through ``transfer_bytes``,
       which counts them the same way and delivers them unchanged.
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
        name: str | None = None,
    ) -> Weights:
        """Encode ``tensors``, count the payload, return the receiver's decoding.

        Args:
            tensors: The payload's tensors.
            direction: ``"downlink"``, ``"uplink"`` or ``"one_time"``.
            client: The client at the other end; None for a broadcast.
            recipients: How many clients receive this same payload.
            name: What a one-time download is (``"teacher"``), for the record.
        """

    @abstractmethod
    def transfer_bytes(
        self, payload: bytes, *, direction: Direction, client: int | None, name: str
    ) -> bytes:
        """Count an already-encoded protocol message and deliver it unchanged.

        Args:
            payload: The message as it travels.
            direction: ``"downlink"`` (server to ``client``) or ``"uplink"``.
            client: The client at the other end; None for a party that is no client
                (the key holder of homomorphic aggregation).
            name: What the message is (``"secagg.share_keys"``), for the record.
        """

    @abstractmethod
    def end_round(self) -> Traffic:
        """The bytes of every transfer since the previous call, by direction."""
