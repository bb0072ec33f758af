"""The simulated network between server and clients: the one place bytes are counted."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from fedsearch.components import Channel, Codec, Direction, Traffic, Transfer, Weights


def raw_float32(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """Lossless encoding of one-time downloads: every value as little-endian float32."""
    return b"".join(
        tensor.detach().float().reshape(-1).numpy().astype("<f4").tobytes()
        for tensor in tensors.values()
    )


class SimulatedChannel(Channel):
    """Encodes every payload with its direction's codec, counts the bytes, decodes.

    Downlink payloads go through the downlink codec, updates through the
    uplink codec. One-time downloads (the teacher's weights, a client's first
    full model) travel losslessly as raw float32: the client uses them
    exactly, and the codecs are for the model and its deltas.

    Args:
        downlink_codec: Encodes what the server sends each round.
        uplink_codec: Encodes what clients send.
    """

    def __init__(self, *, downlink_codec: Codec, uplink_codec: Codec) -> None:
        self.downlink_codec = downlink_codec
        self.uplink_codec = uplink_codec
        self._transfers: list[Transfer] = []

    def transfer(
        self,
        tensors: Weights,
        *,
        direction: Direction,
        client: int | None,
        recipients: int = 1,
        name: str | None = None,
    ) -> Weights:
        """Encode ``tensors``, count the payload (once per recipient), return the decoding."""
        if direction == "one_time":
            payload = raw_float32(tensors)
            decoded = {
                name: tensor.detach().float().to(tensor.dtype) for name, tensor in tensors.items()
            }
        else:
            codec = self.downlink_codec if direction == "downlink" else self.uplink_codec
            payload = codec.encode(tensors, client=client)
            decoded = codec.decode(payload, like=tensors, client=client)
        self._transfers.append(Transfer(direction, client, len(payload) * recipients, name))
        return decoded

    def transfer_bytes(
        self, payload: bytes, *, direction: Direction, client: int | None, name: str
    ) -> bytes:
        """Count ``payload`` under ``name`` and deliver it unchanged."""
        payload = bytes(payload)
        self._transfers.append(Transfer(direction, client, len(payload), name))
        return payload

    def end_round(self) -> Traffic:
        """The bytes of every transfer since the previous call, by direction."""
        traffic = Traffic.of(self._transfers)
        self._transfers = []
        return traffic
