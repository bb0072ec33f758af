"""The simulated network between server and clients: the one place bytes are counted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fedsearch.components import Channel, ClientUpdate, Codec, Weights
from fedsearch.federated._training import LocalTrainer

DOWNLINK_MODES = ("model", "delta")
"""What the server sends: the global model, or a per-client delta."""


def _raw_float32(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """One-time downloads travel losslessly: every value as little-endian float32."""
    return b"".join(
        tensor.detach().float().reshape(-1).numpy().astype("<f4").tobytes()
        for tensor in tensors.values()
    )


def _copy(weights: Mapping[str, Any]) -> Weights:
    return {name: tensor.detach().clone() for name, tensor in weights.items()}


@dataclass
class TrafficCounter:
    """Bytes that crossed the channel, by direction."""

    downlink: int = 0
    uplink: int = 0
    one_time: int = 0
    one_time_by_name: dict[str, int] = field(default_factory=dict)
    """The one-time bytes per named download (``one_time`` is their sum)."""

    @property
    def total(self) -> int:
        """Every byte, both directions, one-time transfers included."""
        return self.downlink + self.uplink + self.one_time


class SimulatedChannel(Channel):
    """Encodes every payload, runs the clients in-process, counts encoded bytes.

    Downlink, ``downlink="model"``: the global weights of a round are encoded
    once and the payload's length counted once per recipient (each receives
    those exact bytes). Downlink, ``downlink="delta"``: each recipient ``k`` gets
    ``weights - reference_k`` encoded for it, where ``reference_k`` is what it
    holds: what it decoded last time, or, before its first round, the initial
    model, which clients build from the study seed without any transfer. The
    channel then keeps one model-sized float copy per client that has taken
    part (memory: participating clients x model size; nothing for the others).

    Uplink: each payload is the client's update (local weights minus the
    weights it trained from), encoded for that client and decoded by the
    server. One-time downloads (such as the teacher's weights) are sent to a
    client the first time it takes part, losslessly as raw float32 (the client
    uses them exactly; the downlink codec is for the model and its deltas).

    Args:
        trainer: Runs local training for any client.
        client_indices: Per client, its training-example indices.
        downlink_codec: Encodes what the server sends.
        uplink_codec: Encodes what clients send.
        one_time_downloads: Named payloads every participating client gets once.
        downlink: ``"model"`` or ``"delta"``.
        initial_weights: The initial model (the first reference in delta mode);
            the weights of the first round when omitted.
    """

    def __init__(
        self,
        trainer: LocalTrainer,
        client_indices: Sequence[np.ndarray],
        *,
        downlink_codec: Codec,
        uplink_codec: Codec,
        one_time_downloads: Mapping[str, Weights] | None = None,
        downlink: str = "model",
        initial_weights: Weights | None = None,
    ) -> None:
        if downlink not in DOWNLINK_MODES:
            raise ValueError(f"downlink must be one of {DOWNLINK_MODES}, got {downlink!r}")
        self.trainer = trainer
        self.client_indices = client_indices
        self.downlink_codec = downlink_codec
        self.uplink_codec = uplink_codec
        self.downlink = downlink
        self.traffic = TrafficCounter()
        self._initial = _copy(initial_weights) if initial_weights is not None else None
        self._references: dict[int, Weights] = {}
        self._one_time_payloads = {
            name: _raw_float32(payload) for name, payload in (one_time_downloads or {}).items()
        }
        self._clients_served: set[int] = set()
        self.last_round_loss = float("nan")

    @property
    def num_clients(self) -> int:
        """How many clients exist."""
        return len(self.client_indices)

    @property
    def reference_bytes(self) -> int:
        """Memory the delta downlink holds: one reference model per client that took part."""
        return sum(
            tensor.numel() * tensor.element_size()
            for reference in self._references.values()
            for tensor in reference.values()
        )

    def train(
        self,
        client_ids: Sequence[int],
        weights: Weights,
        config: Mapping[str, float] | None = None,
    ) -> list[ClientUpdate]:
        """Send ``weights`` to ``client_ids``, train them, return their decoded updates.

        The trainer runs the round's clients (one after another or vectorized;
        clients start from different weights in delta mode, so one by one);
        every payload is still encoded, counted and decoded here, one per client.
        """
        received = self.send(client_ids, weights)
        for client_id in client_ids:
            self._send_one_time_downloads(client_id)
        proximal_mu = float((config or {}).get("proximal_mu", 0.0))
        if self.downlink == "model":
            groups = [list(client_ids)]
        else:
            groups = [[client_id] for client_id in client_ids]
        updates = []
        for group in groups:
            start = received[group[0]]
            trained = self.trainer.train_clients(
                start,
                [self.client_indices[client_id] for client_id in group],
                proximal_mu=proximal_mu,
            )
            for client_id, (local, loss) in zip(group, trained, strict=True):
                num_examples = len(self.client_indices[client_id])
                metrics = {"train_loss": loss}
                updates.append(self.receive(client_id, num_examples, start, local, metrics))
        self.last_round_loss = float(np.mean([u.metrics["train_loss"] for u in updates]))
        return updates

    def send(self, client_ids: Sequence[int], weights: Weights) -> dict[int, Weights]:
        """Encode the downlink for ``client_ids``, count it, return what each decodes."""
        if self.downlink == "model":
            payload = self.downlink_codec.encode(weights, client=None)
            self.traffic.downlink += len(payload) * len(client_ids)
            decoded = self.downlink_codec.decode(payload, like=weights, client=None)
            return {client_id: decoded for client_id in client_ids}
        if self._initial is None:
            self._initial = _copy(weights)
        received = {}
        for client_id in client_ids:
            reference = self._references.get(client_id, self._initial)
            delta = {name: weights[name] - reference[name] for name in weights}
            payload = self.downlink_codec.encode(delta, client=client_id)
            self.traffic.downlink += len(payload)
            decoded = self.downlink_codec.decode(payload, like=delta, client=client_id)
            received[client_id] = {name: reference[name] + decoded[name] for name in weights}
            self._references[client_id] = received[client_id]
        return received

    def receive(
        self,
        client_id: int,
        num_examples: int,
        start: Weights,
        local: Weights,
        metrics: dict[str, float],
    ) -> ClientUpdate:
        """Encode a client's update against ``start``, count it, return the server's decoding."""
        delta = {name: local[name] - start[name] for name in start}
        payload = self.uplink_codec.encode(delta, client=client_id)
        self.traffic.uplink += len(payload)
        return ClientUpdate(
            client_id=client_id,
            num_examples=num_examples,
            delta=self.uplink_codec.decode(payload, like=delta, client=client_id),
            metrics=metrics,
        )

    def _send_one_time_downloads(self, client_id: int) -> None:
        if client_id in self._clients_served:
            return
        self._clients_served.add(client_id)
        by_name = self.traffic.one_time_by_name
        for name, payload in self._one_time_payloads.items():
            by_name[name] = by_name.get(name, 0) + len(payload)
            self.traffic.one_time += len(payload)
