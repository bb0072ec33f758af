"""The two parties of SecAgg+ (Bell et al. 2020, Algorithm 2): a client and the server.

A ``SecAggClient`` holds its own quantized update and its keys. The
``SecAggServer`` is built from public settings only and never receives an
update: each of its ``receive_*`` methods takes the bytes a client sent
through the channel, and what it can read of them is keys, encrypted shares,
masked vectors (uniformly random modulo ``2**bits`` without the masks) and the
shares it asked for. For each client it asks for the share of either the
self-mask seed (client survived) or the mask key (client dropped), never both:
the client refuses a request naming one peer both ways.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence

import numpy as np

from fedsearch import FedsearchError
from fedsearch_builtins.secure_aggregation import _crypto as crypto
from fedsearch_builtins.secure_aggregation import _messages as msg
from fedsearch_builtins.secure_aggregation._field import FieldSpec

SHARE_PLAINTEXT = 8 + 2 * crypto.SHARE_BYTES
SEALED_SHARE = crypto.NONCE_BYTES + SHARE_PLAINTEXT + 16


def mask_info(round_index: int) -> bytes:
    """HKDF context of the pairwise mask keys of a round."""
    return b"fedsearch secagg+ mask" + struct.pack("<I", round_index)


def share_info(round_index: int) -> bytes:
    """HKDF context of the keys that encrypt the shares of a round."""
    return b"fedsearch secagg+ share" + struct.pack("<I", round_index)


class SecAggClient:
    """One client of a round: its vector, keys, and the shares its neighbours sent it."""

    def __init__(self, client: int, vector: np.ndarray, field: FieldSpec, round_index: int):
        self.id = client
        self.vector = vector
        self.field = field
        self.round = round_index
        self.cipher_key = crypto.new_private_key()
        self.mask_key = crypto.new_private_key()
        self.self_seed = os.urandom(crypto.KEY_BYTES)
        self.neighbours: list[int] = []
        self.threshold = 0
        self.keys: dict[int, tuple[bytes, bytes]] = {}
        self.held: dict[int, tuple[bytes, bytes]] = {}

    def receive_setup(self, message: bytes) -> None:
        """Threshold and neighbour list from the server."""
        body = msg.body_of(message, msg.SETUP)
        (self.threshold,) = struct.unpack_from("<H", body, 0)
        self.neighbours, _ = msg.unpack_ids(body, 2)

    def advertise(self) -> bytes:
        """Stage 0: the two public keys."""
        body = crypto.public_bytes(self.cipher_key) + crypto.public_bytes(self.mask_key)
        return msg.tagged(msg.KEYS, body)

    def receive_keys(self, message: bytes) -> None:
        """The public keys of the neighbours that advertised."""
        records = msg.unpack_records(msg.body_of(message, msg.NEIGHBOUR_KEYS), 64)
        self.keys = {v: (keys[:32], keys[32:]) for v, keys in records if v in self.neighbours}

    def share_keys(self) -> bytes:
        """Stage 1: shares of the mask key and self-mask seed, sealed for each neighbour."""
        peers = [v for v in self.neighbours if v in self.keys]
        if len(peers) < self.threshold:
            raise FedsearchError(
                f"secure aggregation: client {self.id} has {len(peers)} neighbours left, "
                f"fewer than the threshold {self.threshold}; lower dropout or raise neighbours"
            )
        count = len(self.neighbours)
        key_shares = crypto.split_secret(crypto.private_bytes(self.mask_key), self.threshold, count)
        seed_shares = crypto.split_secret(self.self_seed, self.threshold, count)
        records = []
        for index, v in enumerate(self.neighbours):
            if v not in self.keys:
                continue
            key = crypto.agree(self.cipher_key, self.keys[v][0], share_info(self.round))
            plain = struct.pack("<II", self.id, v) + key_shares[index] + seed_shares[index]
            records.append((v, crypto.seal(key, plain, struct.pack("<II", self.id, v))))
        return msg.tagged(msg.SHARES, msg.pack_records(records, SEALED_SHARE))

    def receive_shares(self, message: bytes) -> None:
        """The sealed shares neighbours addressed to this client: open and keep them."""
        for u, sealed in msg.unpack_records(msg.body_of(message, msg.FORWARDED), SEALED_SHARE):
            key = crypto.agree(self.cipher_key, self.keys[u][0], share_info(self.round))
            plain = crypto.open_sealed(key, sealed, struct.pack("<II", u, self.id))
            sender, recipient = struct.unpack_from("<II", plain, 0)
            if (sender, recipient) != (u, self.id):
                raise msg.MessageError(f"share from {sender} to {recipient} delivered as {u}")
            self.held[u] = (plain[8:40], plain[40:72])

    def masked_input(self) -> bytes:
        """Stage 2: the vector plus the self mask and the pairwise masks with sharing peers."""
        length = len(self.vector)
        masked = self.vector + self.field.mask(self.self_seed, length)
        for v in self.held:  # the neighbours that completed the share stage
            seed = crypto.agree(self.mask_key, self.keys[v][1], mask_info(self.round))
            pair = self.field.mask(seed, length)
            masked = masked + pair if self.id < v else masked - pair
        return msg.tagged(msg.MASKED, self.field.encode(masked & self.field.modulus_mask))

    def unmask(self, message: bytes) -> bytes:
        """Stage 3: self-mask shares of surviving peers, mask-key shares of dropped ones."""
        body = msg.body_of(message, msg.UNMASK_REQUEST)
        survivors, offset = msg.unpack_ids(body)
        dropped, _ = msg.unpack_ids(body, offset)
        if set(survivors) & set(dropped):
            raise FedsearchError(
                f"secure aggregation: client {self.id} was asked for both shares of "
                f"{sorted(set(survivors) & set(dropped))}; it refuses (that would unmask them)"
            )
        records = [
            (u, bytes([msg.SELF_MASK]) + self.held[u][1]) for u in survivors if u in self.held
        ]
        records += [(u, bytes([msg.PAIR_KEY]) + self.held[u][0]) for u in dropped if u in self.held]
        return msg.tagged(msg.UNMASK, msg.pack_records(records, 1 + crypto.SHARE_BYTES))


class SecAggServer:
    """The server of a round: routes messages, sums masked vectors, removes the masks."""

    def __init__(
        self,
        graph: Mapping[int, Sequence[int]],
        threshold: int,
        field: FieldSpec,
        length: int,
        round_index: int,
    ) -> None:
        self.graph = graph
        self.threshold = threshold
        self.field = field
        self.length = length
        self.round = round_index
        self.keys: dict[int, bytes] = {}
        self.outbox: dict[int, list[tuple[int, bytes]]] = {}
        self.sharers: list[int] = []
        self.total = np.zeros(length, dtype=np.uint64)
        self.inputs: list[int] = []
        self.shares: dict[tuple[int, int], list[tuple[int, bytes]]] = {}

    def setup(self, client: int) -> bytes:
        """Threshold and neighbour list for ``client``."""
        body = struct.pack("<H", self.threshold) + msg.pack_ids(self.graph[client])
        return msg.tagged(msg.SETUP, body)

    def receive_keys(self, client: int, message: bytes) -> None:
        """A client's two public keys."""
        self.keys[client] = msg.body_of(message, msg.KEYS)

    def neighbour_keys(self, client: int) -> bytes:
        """The public keys of ``client``'s neighbours that advertised."""
        records = [(v, self.keys[v]) for v in self.graph[client] if v in self.keys]
        return msg.tagged(msg.NEIGHBOUR_KEYS, msg.pack_records(records, 64))

    def receive_shares(self, client: int, message: bytes) -> None:
        """A client's sealed shares, kept for their recipients (the server cannot open them)."""
        for v, sealed in msg.unpack_records(msg.body_of(message, msg.SHARES), SEALED_SHARE):
            self.outbox.setdefault(v, []).append((client, sealed))
        self.sharers.append(client)

    def forwarded(self, client: int) -> bytes:
        """The sealed shares addressed to ``client``."""
        records = self.outbox.get(client, [])
        return msg.tagged(msg.FORWARDED, msg.pack_records(records, SEALED_SHARE))

    def receive_masked(self, client: int, message: bytes) -> None:
        """Add a masked vector to the running sum."""
        vector = self.field.decode(msg.body_of(message, msg.MASKED))
        if len(vector) != self.length:
            raise msg.MessageError(f"masked input of {len(vector)} elements, not {self.length}")
        self.total = (self.total + vector) & self.field.modulus_mask
        self.inputs.append(client)

    def unmask_request(self, client: int) -> bytes:
        """Which of ``client``'s neighbours survived (send their seed shares) or dropped."""
        near = [v for v in self.graph[client] if v in self.sharers]
        survivors = [v for v in near if v in self.inputs]
        dropped = [v for v in near if v not in self.inputs]
        return msg.tagged(msg.UNMASK_REQUEST, msg.pack_ids(survivors) + msg.pack_ids(dropped))

    def receive_unmask(self, client: int, message: bytes) -> None:
        """Shares a survivor revealed, by the peer they belong to."""
        body = msg.body_of(message, msg.UNMASK)
        for u, record in msg.unpack_records(body, 1 + crypto.SHARE_BYTES):
            index = list(self.graph[u]).index(client)
            self.shares.setdefault((u, record[0]), []).append((index, record[1:]))

    def aggregate(self) -> np.ndarray:
        """The sum of the survivors' vectors: remove self masks and dropouts' pairwise masks."""
        total = self.total.copy()
        for u in self.inputs:
            seed = self._rebuild(u, msg.SELF_MASK)
            total = total - self.field.mask(seed, self.length)
        for u in (v for v in self.sharers if v not in self.inputs):
            secret = self._rebuild(u, msg.PAIR_KEY)
            for v in (w for w in self.graph[u] if w in self.inputs):
                public = self.keys[v][32:]
                pair = self.field.mask(
                    crypto.agree(secret, public, mask_info(self.round)), self.length
                )
                total = total - pair if v < u else total + pair
        return total & self.field.modulus_mask

    def _rebuild(self, client: int, what: int) -> bytes:
        shares = self.shares.get((client, what), [])
        if len(shares) < self.threshold:
            raise FedsearchError(
                f"secure aggregation round {self.round}: {len(shares)} shares of client "
                f"{client}'s {'seed' if what == msg.SELF_MASK else 'mask key'} came back, "
                f"threshold {self.threshold}; lower dropout or threshold, or raise neighbours"
            )
        return crypto.combine_shares(shares[: self.threshold])
