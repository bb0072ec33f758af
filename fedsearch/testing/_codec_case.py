"""``CodecTestCase``: the conformance suite every codec's tests subclass."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from fedsearch.components import Codec, Weights, compose_codecs
from fedsearch.federated import SimulatedChannel, SimulationResult
from fedsearch.host import get_registry
from fedsearch.testing._declared import assert_declares_name_and_params
from fedsearch.testing._rounds import run_tiny_federation, tiny_data


@dataclass(frozen=True)
class Sent:
    """One payload a codec encoded: what went in, for whom, and the bytes."""

    tensors: Weights
    client: int | None
    payload: bytes


def recording(codec: Codec) -> list[Sent]:
    """Record every ``encode`` of ``codec`` (this instance only) into the returned list."""
    sent: list[Sent] = []
    encode = codec.encode

    def encode_and_record(tensors: Any, *, client: int | None = None) -> bytes:
        copy = {name: tensor.detach().clone() for name, tensor in tensors.items()}
        payload = encode(tensors, client=client)
        sent.append(Sent(copy, client, payload))
        return payload

    codec.encode = encode_and_record  # type: ignore[method-assign]
    return sent


_REAL_PAYLOADS: dict[tuple[int, int], list[Sent]] = {}
"""What a float32 federation sent, by (clients, rounds): the same for every codec."""


def float32() -> Codec:
    """The lossless float32 baseline."""
    codec = get_registry().create("codec", "float32")
    assert isinstance(codec, Codec)
    return codec


def flat(tensors: Weights) -> torch.Tensor:
    """Every value of ``tensors`` in payload order, as float64."""
    if not tensors:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat([tensor.detach().reshape(-1).double() for tensor in tensors.values()])


class CodecTestCase:
    """Contract tests for a :class:`~fedsearch.Codec`; subclass it in your tests.

    Set ``codec_class`` (and ``params``); a codec that wraps another
    (``requires_inner``) names the stages after it in ``inner``. pytest
    collects the inherited ``test_*`` methods. They run the codec on the
    updates and models that really cross the channel in a tiny federation
    (three clients, two rounds, a small MLP with batch norm, so integer
    counters travel too) and check: the payload is ``bytes``; decoding keeps
    names, order, shapes and dtypes and gives finite values, exactly for a
    ``lossless`` codec and within ``max_error`` for a lossy one that declares
    its bound; decoding needs only the payload (a fresh instance, or ``like``
    filled with zeros, decodes the same); the same inputs give the same bytes
    and the global RNG is left alone; the real channel counts ``len()`` of
    the payload (times the recipients of a broadcast); a real federation with
    the codec on the uplink and the downlink (the uplink only for a
    ``stateful`` codec, which the downlink refuses) counts exactly the summed
    payload lengths; and a stateful codec's state of one client never changes
    another's payloads.

    Example::

        from fedsearch.testing import CodecTestCase
        from my_plugin import Int8Codec

        class TestInt8Codec(CodecTestCase):
            codec_class = Int8Codec

            def max_error(self, values):
                return values.abs().max() / 254  # half a step of a +-127 grid

    Attributes:
        codec_class: The codec under test.
        params: Its params (defaults when empty).
        inner: ``(codec class, params)`` of the stages that follow it in a
            pipeline (needed when it ``requires_inner``).
        lossless: Decoding returns every value exactly.
        num_clients: Clients of the tiny federation.
        num_rounds: Rounds of the tiny federation.
    """

    codec_class: ClassVar[type[Codec]]
    params: ClassVar[dict[str, Any]] = {}
    inner: ClassVar[list[tuple[type[Codec], dict[str, Any]]]] = []
    lossless: ClassVar[bool] = False
    num_clients: ClassVar[int] = 3
    num_rounds: ClassVar[int] = 2

    # --- helpers (override to adapt) -------------------------------------------------

    def make_codec(self) -> Codec:
        """A fresh pipeline: the codec, then its ``inner`` stages."""
        stages = [self.codec_class(self.codec_class.Params(**self.params))]
        stages += [cls(cls.Params(**params)) for cls, params in self.inner]
        return compose_codecs(stages)

    def max_error(self, values: torch.Tensor) -> torch.Tensor | float | None:
        """The largest allowed ``|decoded - value|`` of each of ``values`` (float64, every
        value of one payload in order), or None when the codec promises only finite values.

        ``lossless`` codecs need not override it (their bound is 0).
        """
        return 0.0 if self.lossless else None

    def federate(
        self, make_uplink: Callable[[], Codec], make_downlink: Callable[[], Codec]
    ) -> tuple[SimulationResult, list[Sent], list[Sent]]:
        """A tiny real federation; the result and what each link's codec encoded."""
        uplink, downlink = make_uplink(), make_downlink()
        sent_up, sent_down = recording(uplink), recording(downlink)
        with torch.random.fork_rng():  # the caller's global RNG stays as it was
            torch.manual_seed(0)
            model = nn.Sequential(
                nn.Flatten(), nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)
            )
        generator = torch.Generator().manual_seed(0)
        inputs = torch.randn(24, 6, generator=generator)
        labels = torch.randint(0, 3, (24,), generator=generator)
        result = run_tiny_federation(
            model,
            tiny_data(inputs, labels, 3, self.num_clients),
            rounds=self.num_rounds,
            execution="sequential",
            uplink_codec=uplink,
            downlink_codec=downlink,
        )
        return result, sent_up, sent_down

    def real_payloads(self) -> list[Sent]:
        """The client updates and global models a float32 federation sends (what codecs see)."""
        key = (self.num_clients, self.num_rounds)
        if key not in _REAL_PAYLOADS:
            _, updates, models = self.federate(float32, float32)
            _REAL_PAYLOADS[key] = updates + models
        return [
            Sent({name: tensor.clone() for name, tensor in sent.tensors.items()}, sent.client, b"")
            for sent in _REAL_PAYLOADS[key]
        ]

    def round_trip(self, sent: Sent) -> tuple[Codec, bytes, Weights]:
        """A fresh pipeline's payload for ``sent`` and its decoding."""
        codec = self.make_codec()
        before = {name: tensor.clone() for name, tensor in sent.tensors.items()}
        payload = codec.encode(sent.tensors, client=sent.client)
        assert all(torch.equal(before[name], t) for name, t in sent.tensors.items()), (
            "encode modified its input"
        )
        assert type(payload) is bytes, f"encode returned {type(payload).__name__}, not bytes"
        return codec, payload, codec.decode(payload, like=sent.tensors, client=sent.client)

    # --- the contract ----------------------------------------------------------------

    def test_declares_name_params_and_pipeline_flags(self) -> None:
        """A non-empty name, a ComponentParams model accepting the params, a pipeline that ends."""
        cls = self.codec_class
        assert_declares_name_and_params(cls, self.params)
        assert not cls.requires_inner or cls.accepts_inner, "requires_inner needs accepts_inner"
        if cls.requires_inner:
            assert self.inner, f"{cls.name} wraps another codec: name it in `inner`"
        assert "+" not in cls.name, "`+` joins pipeline stages; leave it out of the name"

    def test_round_trip_keeps_names_shapes_dtypes_within_the_bound(self) -> None:
        """Real updates and models decode to the same names, order, shapes and dtypes,
        finite, exactly when ``lossless``, within ``max_error`` when it is declared."""
        for sent in self.real_payloads():
            _, _, decoded = self.round_trip(sent)
            assert list(decoded) == list(sent.tensors), "decode must keep every name, in order"
            for name, tensor in sent.tensors.items():
                assert decoded[name].shape == tensor.shape, f"{name}'s shape changed"
                assert decoded[name].dtype == tensor.dtype, f"{name}'s dtype changed"
                assert torch.isfinite(decoded[name].double()).all(), f"{name} is not finite"
            values = flat(sent.tensors)
            bound = self.max_error(values)
            if bound is None:
                continue
            error = (flat(decoded) - values).abs()
            allowed = torch.as_tensor(bound, dtype=torch.float64).expand_as(values)
            worst = int((error - allowed).argmax()) if len(values) else 0
            assert (error <= allowed).all(), (
                f"value {worst} decodes {error[worst].item():.3g} off; "
                f"the codec's bound allows {allowed[worst].item():.3g}"
            )

    def test_decoding_needs_only_the_payload(self) -> None:
        """A fresh instance, or ``like`` holding zeros, decodes the same; decoding is repeatable.

        A ``stateful`` codec decodes with the instance that encoded (its declared state).
        """
        for sent in self.real_payloads()[:3]:
            codec, payload, decoded = self.round_trip(sent)
            zeros = {name: torch.zeros_like(tensor) for name, tensor in sent.tensors.items()}
            decoder = codec if self.codec_class.stateful else self.make_codec()
            for again in (
                decoder.decode(payload, like=sent.tensors, client=sent.client),
                decoder.decode(payload, like=zeros, client=sent.client),
                codec.decode(payload, like=sent.tensors, client=sent.client),
            ):
                for name, tensor in decoded.items():
                    assert torch.equal(again[name], tensor), (
                        f"{name} decodes differently: decode must be a pure function of the "
                        "payload and the names, shapes and dtypes of `like`"
                    )

    def test_same_inputs_same_bytes_and_the_global_rng_alone(self) -> None:
        """Two fresh pipelines encode the same updates to the same bytes, without torch's RNG."""
        payloads = self.real_payloads()
        first, second = self.make_codec(), self.make_codec()
        before = torch.get_rng_state()
        for sent in payloads:
            one = first.encode(sent.tensors, client=sent.client)
            first.decode(one, like=sent.tensors, client=sent.client)
            two = second.encode(sent.tensors, client=sent.client)
            second.decode(two, like=sent.tensors, client=sent.client)
            assert one == two, "the same inputs gave different bytes; seed a generator of your own"
        assert torch.equal(before, torch.get_rng_state()), (
            "the codec changed the global RNG; draw from a torch.Generator of its own"
        )

    def test_the_channel_counts_the_payload_length(self) -> None:
        """The real channel counts ``len(payload)`` (per recipient of a broadcast) and
        delivers what ``decode`` gives."""
        payloads = self.real_payloads()
        update, model = payloads[0], payloads[-1]
        uplink, downlink = self.make_codec(), self.make_codec()
        sent_up, sent_down = recording(uplink), recording(downlink)
        channel = SimulatedChannel(downlink_codec=downlink, uplink_codec=uplink)
        received = channel.transfer(update.tensors, direction="uplink", client=2)
        delivered = channel.transfer(model.tensors, direction="downlink", client=None, recipients=3)
        traffic = channel.end_round()
        assert traffic.uplink == len(sent_up[0].payload) > 0
        assert traffic.downlink == 3 * len(sent_down[0].payload)
        expected = self.make_codec().decode(sent_up[0].payload, like=update.tensors, client=2)
        if self.codec_class.stateful:
            expected = uplink.decode(sent_up[0].payload, like=update.tensors, client=2)
        assert all(torch.equal(received[name], expected[name]) for name in expected)
        assert set(delivered) == set(model.tensors)

    def test_a_real_federation_counts_the_summed_payload_lengths(self) -> None:
        """Rounds with the codec on both links (uplink only when ``stateful``) finish with
        finite weights, and the bytes counted are the payloads' summed lengths."""
        stateful = self.codec_class.stateful
        downlink = float32 if stateful else self.make_codec
        result, up, down = self.federate(self.make_codec, downlink)
        assert len(result.history) == self.num_rounds
        assert all(torch.isfinite(tensor.double()).all() for tensor in result.weights.values())
        assert len(up) == self.num_rounds * self.num_clients
        assert result.uplink_bytes == sum(len(sent.payload) for sent in up)
        assert len(down) == self.num_rounds  # model downlink: one payload a round, to every client
        assert result.downlink_bytes == self.num_clients * sum(len(sent.payload) for sent in down)
        assert sum(r.uplink_bytes for r in result.history) == result.uplink_bytes

    def test_state_of_one_client_never_changes_another(self) -> None:
        """Stateful: client 5's payloads are the same whether or not client 3 encoded in
        between. Stateless: a payload decodes the same whatever client it names."""
        updates = self.real_payloads()[: self.num_clients]
        if not self.codec_class.stateful:
            for sent in updates:
                codec, payload, decoded = self.round_trip(sent)
                for client in (None, 3, 5):
                    again = codec.decode(payload, like=sent.tensors, client=client)
                    assert all(torch.equal(again[n], t) for n, t in decoded.items()), (
                        f"decoding for client {client} differs: the codec keeps per-client "
                        "state; set `stateful = True` and key it by client"
                    )
            return

        def client_five(others: list[int]) -> list[bytes]:
            codec, payloads = self.make_codec(), []
            for sent in updates:
                for client in [*others, 5]:
                    payload = codec.encode(sent.tensors, client=client)
                    codec.decode(payload, like=sent.tensors, client=client)
                    if client == 5:
                        payloads.append(payload)
            return payloads

        assert client_five([]) == client_five([3]), "client 3's encoding changed client 5's bytes"
