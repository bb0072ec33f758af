"""What the server sends each client: the model, or a delta against what the client holds."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from fedsearch.components import Channel, Weights

DOWNLINK_MODES = ("model", "delta")
"""What the server sends: the global model, or a per-client delta."""
INITIAL_MODELS = ("download", "seeded")
"""How a client gets its first model in delta mode: downloaded (and counted), or built
from the study seed (no transfer)."""
INITIAL_MODEL = "initial_model"
"""Name under which a client's first full model is recorded among one-time bytes."""

PayloadHook = Callable[[Weights, int | None], Weights]
"""Server-side middleware: ``(payload, client or None) -> payload``."""


def _copy(weights: Weights) -> Weights:
    return {name: tensor.detach().clone() for name, tensor in weights.items()}


class Downlink:
    """The server's side of the downlink protocol.

    ``mode="model"``: the round's global weights are encoded once and the
    payload counted once per recipient (each receives those exact bytes).

    ``mode="delta"``: each recipient ``k`` gets ``weights - reference_k``
    encoded for it, where ``reference_k`` is what it holds (what it decoded
    last time). Before its first round a client holds nothing: with
    ``initial_model="download"`` (the default) it downloads the current global
    model in full, losslessly, as a one-time transfer counted by the channel;
    with ``"seeded"`` the study declares that clients build the initial model
    from the seed, so it is their first reference and costs nothing. The server
    keeps one model-sized copy per client that took part.

    One-time downloads (the teacher's weights) go to each client the first
    time it takes part.

    Args:
        mode: ``"model"`` or ``"delta"``.
        initial_weights: The initial model (the first reference when seeded).
        initial_model: ``"download"`` or ``"seeded"``.
        one_time_downloads: Named payloads every participating client gets once.
    """

    def __init__(
        self,
        mode: str,
        initial_weights: Weights,
        *,
        initial_model: str = "download",
        one_time_downloads: Mapping[str, Weights] | None = None,
    ) -> None:
        if mode not in DOWNLINK_MODES:
            raise ValueError(f"downlink must be one of {DOWNLINK_MODES}, got {mode!r}")
        if initial_model not in INITIAL_MODELS:
            raise ValueError(
                f"initial_model must be one of {INITIAL_MODELS}, got {initial_model!r}"
            )
        self.mode = mode
        self.initial_model = initial_model
        self._initial = _copy(initial_weights)
        self._one_time = dict(one_time_downloads or {})
        self._references: dict[int, Weights] = {}
        self._served: set[int] = set()

    @property
    def reference_bytes(self) -> int:
        """Memory the delta downlink holds: one reference model per client that took part."""
        return sum(
            tensor.numel() * tensor.element_size()
            for reference in self._references.values()
            for tensor in reference.values()
        )

    def references(self) -> dict[int, Weights]:
        """Per client that took part in delta mode, the model it holds."""
        return dict(self._references)

    def send(
        self,
        channel: Channel,
        client_ids: Sequence[int],
        weights: Weights,
        on_send: PayloadHook | None = None,
    ) -> dict[int, Weights]:
        """Deliver ``weights`` to ``client_ids`` through ``channel``; return what each holds.

        Args:
            channel: Encodes and counts every payload.
            client_ids: The round's clients.
            weights: The global weights.
            on_send: Server-side middleware applied to each payload before the channel.
        """
        hook = on_send or (lambda payload, client: payload)
        for client_id in client_ids:
            if client_id not in self._served:
                self._served.add(client_id)
                for name, payload in self._one_time.items():
                    channel.transfer(payload, direction="one_time", client=client_id, name=name)
        if self.mode == "model":
            decoded = channel.transfer(
                hook(weights, None), direction="downlink", client=None, recipients=len(client_ids)
            )
            return dict.fromkeys(client_ids, decoded)
        return {
            client_id: self._send_delta(channel, client_id, weights, hook)
            for client_id in client_ids
        }

    def _send_delta(
        self, channel: Channel, client_id: int, weights: Weights, hook: PayloadHook
    ) -> Weights:
        reference = self._references.get(client_id)
        if reference is None and self.initial_model == "download":
            received = channel.transfer(
                weights, direction="one_time", client=client_id, name=INITIAL_MODEL
            )
        else:
            reference = reference if reference is not None else self._initial
            delta = hook({name: weights[name] - reference[name] for name in weights}, client_id)
            decoded = channel.transfer(delta, direction="downlink", client=client_id)
            received = {name: reference[name] + decoded[name] for name in weights}
        self._references[client_id] = received
        return received
