"""The simulated network between server and clients: the one place bytes are counted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedsearch.components import Channel, ClientUpdate, Codec, Weights
from fedsearch.federated._training import LocalTrainer


@dataclass
class TrafficCounter:
    """Bytes that crossed the channel, by direction."""

    downlink: int = 0
    uplink: int = 0
    one_time: int = 0

    @property
    def total(self) -> int:
        """Every byte, both directions, one-time transfers included."""
        return self.downlink + self.uplink + self.one_time


class SimulatedChannel(Channel):
    """Encodes every payload, runs the clients in-process, counts encoded bytes.

    The downlink payload of a round is encoded once and its length counted once
    per recipient (each receives those exact bytes). Each uplink payload is the
    client's update, encoded and decoded. One-time downloads (such as the
    teacher's weights) are sent to a client the first time it takes part.

    Args:
        trainer: Runs local training for any client.
        client_indices: Per client, its training-example indices.
        downlink_codec: Encodes what the server sends.
        uplink_codec: Encodes what clients send.
        one_time_downloads: Named payloads every participating client gets once.
    """

    def __init__(
        self,
        trainer: LocalTrainer,
        client_indices: Sequence[np.ndarray],
        *,
        downlink_codec: Codec,
        uplink_codec: Codec,
        one_time_downloads: Mapping[str, Weights] | None = None,
    ) -> None:
        self.trainer = trainer
        self.client_indices = client_indices
        self.downlink_codec = downlink_codec
        self.uplink_codec = uplink_codec
        self.traffic = TrafficCounter()
        self._one_time_payloads = [
            downlink_codec.encode(payload) for payload in (one_time_downloads or {}).values()
        ]
        self._clients_served: set[int] = set()
        self.last_round_loss = float("nan")

    @property
    def num_clients(self) -> int:
        """How many clients exist."""
        return len(self.client_indices)

    def train(
        self,
        client_ids: Sequence[int],
        weights: Weights,
        config: Mapping[str, float] | None = None,
    ) -> list[ClientUpdate]:
        """Broadcast ``weights`` to ``client_ids``, train them, return their decoded updates.

        The trainer runs the round's clients (one after another or vectorized);
        every payload is still encoded, counted and decoded here, one per client.
        """
        payload = self.downlink_codec.encode(weights)
        self.traffic.downlink += len(payload) * len(client_ids)
        received = self.downlink_codec.decode(payload, like=weights)
        for client_id in client_ids:
            self._send_one_time_downloads(client_id)
        trained = self.trainer.train_clients(
            received,
            [self.client_indices[client_id] for client_id in client_ids],
            proximal_mu=float((config or {}).get("proximal_mu", 0.0)),
        )
        updates = []
        for client_id, (local, loss) in zip(client_ids, trained, strict=True):
            delta = {name: local[name] - received[name] for name in received}
            uplink = self.uplink_codec.encode(delta)
            self.traffic.uplink += len(uplink)
            updates.append(
                ClientUpdate(
                    client_id=client_id,
                    num_examples=len(self.client_indices[client_id]),
                    delta=self.uplink_codec.decode(uplink, like=delta),
                    metrics={"train_loss": loss},
                )
            )
        self.last_round_loss = float(np.mean([u.metrics["train_loss"] for u in updates]))
        return updates

    def _send_one_time_downloads(self, client_id: int) -> None:
        if client_id in self._clients_served:
            return
        self._clients_served.add(client_id)
        self.traffic.one_time += sum(len(payload) for payload in self._one_time_payloads)
