"""The ``ckks`` secure aggregator: homomorphic summation of encrypted updates (TenSEAL).

Parties: the clients, the server, and a key holder (a party that colludes
with no server: in deployments a trusted authority or a committee). The key
holder creates the CKKS keys once per run and sends the public context (no
secret key, no Galois or relinearization keys: summation needs none) to the
server and to each client the first time it takes part, as one-time
downloads. Each round every client encrypts ``weight * update`` and its
weight, packed ``poly_modulus_degree / 2`` values to a ciphertext; the server
deserializes and adds the ciphertexts (it holds no secret key, so it cannot
decrypt one); it sends only the sum to the key holder, which decrypts it and
returns it as float64. Every one of these messages crosses the channel.

Precision: CKKS is approximate. With the defaults (N = 8192, moduli
[60, 40, 60], scale 2**40) the decrypted sum is within about 1e-7 of the
plain sum for values of order 1 (docs/secure-aggregation.md measures it);
ciphertexts are zstd-compressed by SEAL, so their lengths vary by a few bytes
from one encryption to the next.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field

from fedsearch import (
    Channel,
    ComponentParams,
    FedsearchError,
    SecureAggregate,
    SecureAggregator,
    Weights,
)
from fedsearch_builtins.secure_aggregation._field import flatten, unflatten
from fedsearch_builtins.secure_aggregation._protocol import dropouts

if TYPE_CHECKING:
    import tenseal as ts


def tenseal() -> Any:
    """The ``tenseal`` module, or a ``FedsearchError`` saying how to install it."""
    try:
        import tenseal as module
    except ImportError:
        raise FedsearchError(
            "CKKS aggregation needs TenSEAL; install it with: pip install 'fedsearch[he]'"
        ) from None
    return module


class CkksParams(ComponentParams):
    """Knobs of CKKS aggregation."""

    poly_modulus_degree: Literal[4096, 8192, 16384] = 8192
    """Ring dimension N; a ciphertext packs N / 2 values."""
    coeff_mod_bit_sizes: list[Annotated[int, Field(ge=20, le=60)]] = [60, 40, 60]
    """Bit sizes of the coefficient modulus primes (their sum is bounded by N's security)."""
    scale_bits: Annotated[int, Field(ge=20, le=59)] = 40
    """The encoding scale ``2**scale_bits``: more bits, more precision."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Share of each round's clients that drop out before sending (drawn from the seed)."""


class CkksAggregator(SecureAggregator):
    """Homomorphic aggregation with CKKS (Cheon et al. 2017) from TenSEAL.

    The uplink is ciphertexts, so the study's uplink codec is not used (only
    ``float32`` is accepted with it).
    """

    name = "ckks"
    description = "CKKS homomorphic aggregation (TenSEAL)"
    metric = "he_overhead_bytes"
    Params = CkksParams
    params: CkksParams

    def __init__(self, params: CkksParams | None = None) -> None:
        super().__init__(params)
        self._secret: ts.Context | None = None
        self._server: ts.Context | None = None
        self._clients: dict[int, ts.Context] = {}
        self._public = b""

    @property
    def slots(self) -> int:
        """Values a ciphertext packs."""
        return self.params.poly_modulus_degree // 2

    def new_context(self) -> ts.Context:
        """The key holder's context (with the secret key)."""
        params = self.params
        ts = tenseal()
        context = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=params.poly_modulus_degree,
            coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
        )
        context.global_scale = 2.0**params.scale_bits
        return context

    def check(self, clients_per_round: int) -> None:
        """Refuse moduli the ring dimension cannot hold securely (SEAL's own check)."""
        try:
            self.new_context()
        except FedsearchError as error:
            raise ValueError(str(error)) from None
        except ValueError as error:
            raise ValueError(
                f"CKKS parameters rejected by SEAL ({error}); use fewer or smaller "
                "coeff_mod_bit_sizes or a larger poly_modulus_degree"
            ) from None

    def aggregate(
        self,
        channel: Channel,
        updates: Mapping[int, Weights],
        weights: Mapping[int, int],
        *,
        round_index: int,
        seed: int,
    ) -> SecureAggregate:
        """Encrypt on the clients, add on the server, decrypt the sum at the key holder."""
        ts = tenseal()
        public = self._public_context(channel)
        ids = sorted(updates)
        gone = dropouts(ids, self.params.dropout, np.random.default_rng(seed))
        survivors = [client for client in ids if client not in gone]
        if not survivors:
            raise FedsearchError(f"CKKS aggregation round {round_index}: every client dropped out")
        total: ts.CKKSVector | list[ts.CKKSVector] = []
        length = 0
        for client in survivors:
            context = self._client_context(channel, client, public)
            values = np.append(flatten(updates[client]) * weights[client], weights[client])
            length = len(values)
            message = encrypt(context, values, self.slots)
            received = channel.transfer_bytes(
                message, direction="uplink", client=client, name="he.ciphertexts"
            )
            vectors = [ts.ckks_vector_from(self._server, part) for part in split(received)]
            total = vectors if not total else [a + b for a, b in zip(total, vectors, strict=True)]
        to_key_holder = channel.transfer_bytes(
            join([vector.serialize() for vector in total]),
            direction="downlink",
            client=None,
            name="he.sum_to_key_holder",
        )
        assert self._secret is not None
        decrypted = np.concatenate(
            [ts.ckks_vector_from(self._secret, part).decrypt() for part in split(to_key_holder)]
        )[:length]
        plain_sum = channel.transfer_bytes(
            decrypted.astype("<f8").tobytes(), direction="uplink", client=None, name="he.sum"
        )
        summed = np.frombuffer(plain_sum, dtype="<f8")
        like = next(iter(updates.values()))
        return SecureAggregate(
            mean_delta=unflatten(summed[:-1] / summed[-1], like),
            total_weight=float(summed[-1]),
            survivors=tuple(survivors),
            dropped=tuple(sorted(gone)),
            plain_bytes=4 * (length - 1) * len(survivors),
        )

    def _public_context(self, channel: Channel) -> bytes:
        if self._secret is None:
            self._secret = self.new_context()
            public = self._secret.serialize(
                save_public_key=True,
                save_secret_key=False,
                save_galois_keys=False,
                save_relin_keys=False,
            )
            received = channel.transfer_bytes(
                public, direction="one_time", client=None, name="he.public_context"
            )
            self._server = tenseal().context_from(received)
            self._public = public
        return self._public

    def _client_context(self, channel: Channel, client: int, public: bytes) -> ts.Context:
        if client not in self._clients:
            received = channel.transfer_bytes(
                public, direction="one_time", client=client, name="he.public_context"
            )
            self._clients[client] = tenseal().context_from(received)
        return self._clients[client]


def encrypt(context: ts.Context, values: np.ndarray, slots: int) -> bytes:
    """``values`` encrypted ``slots`` at a time, serialized and joined."""
    vector = tenseal().ckks_vector
    return join(
        [vector(context, values[i : i + slots]).serialize() for i in range(0, len(values), slots)]
    )


def join(parts: list[bytes]) -> bytes:
    """A count, then each part after its 32-bit length."""
    return struct.pack("<I", len(parts)) + b"".join(
        struct.pack("<I", len(part)) + part for part in parts
    )


def split(message: bytes) -> list[bytes]:
    """The parts of ``join``."""
    (count,) = struct.unpack_from("<I", message, 0)
    parts, offset = [], 4
    for _ in range(count):
        (size,) = struct.unpack_from("<I", message, offset)
        parts.append(message[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return parts
