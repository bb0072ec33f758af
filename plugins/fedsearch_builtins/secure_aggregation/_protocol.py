"""One round of SecAgg+ over the channel: every message of every stage is encoded and counted."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fedsearch import Channel, FedsearchError
from fedsearch_builtins.secure_aggregation._field import FieldSpec
from fedsearch_builtins.secure_aggregation._graph import default_degree, harary_graph
from fedsearch_builtins.secure_aggregation._parties import SecAggClient, SecAggServer

Stage = Literal["advertise_keys", "share_keys", "masked_input"]
STAGES: tuple[Stage, ...] = ("advertise_keys", "share_keys", "masked_input")


@dataclass(frozen=True)
class SecureSum:
    """The sum the server recovered and who took part.

    Attributes:
        total: Sum modulo ``2**bits`` of the survivors' vectors.
        survivors: Clients whose vectors are in ``total``.
        dropped: Clients that dropped out at any stage.
    """

    total: np.ndarray
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]


def dropouts(clients: list[int], fraction: float, rng: np.random.Generator) -> set[int]:
    """``round(fraction * n)`` clients drawn from ``rng`` (the trial's seed: reproducible)."""
    count = min(len(clients), round(fraction * len(clients)))
    return {clients[int(i)] for i in rng.choice(len(clients), size=count, replace=False)}


def secure_sum(
    channel: Channel,
    vectors: Mapping[int, np.ndarray],
    field: FieldSpec,
    *,
    round_index: int,
    seed: int,
    degree: int = 0,
    threshold_fraction: float = 0.5,
    dropout: float = 0.0,
    dropout_after: Stage = "share_keys",
) -> SecureSum:
    """Run SecAgg+ for ``vectors`` (each client's quantized update) and return their sum.

    Stages (Bell et al. 2020): setup (server sends each client its neighbours),
    advertise keys, share keys (sealed Shamir shares routed by the server),
    masked input, unmasking. The ``dropout`` share of clients, drawn from
    ``seed``, leave after ``dropout_after`` and send nothing more.

    Args:
        channel: Counts and delivers every message.
        vectors: Per client, its vector in the ring.
        field: The ring and wire width.
        round_index: The round (binds keys and masks to it).
        seed: Draws the graph and the dropouts.
        degree: Neighbours a client shares with; 0: ``default_degree``.
        threshold_fraction: Shares needed to rebuild a secret, as a fraction of
            the degree (at least a majority of it plus one is safest).
        dropout: Share of clients that drop out.
        dropout_after: The stage after which they drop.
    """
    ids = sorted(vectors)
    if not ids:
        raise FedsearchError("secure aggregation needs at least one client in a round")
    rng = np.random.default_rng(seed)
    graph = harary_graph(ids, degree or default_degree(len(ids)), rng)
    smallest = min(len(near) for near in graph.values())
    threshold = max(1, min(smallest, math.floor(threshold_fraction * smallest) + 1))
    gone = dropouts(ids, dropout, rng)
    length = len(next(iter(vectors.values())))
    server = SecAggServer(graph, threshold, field, length, round_index)
    clients = {u: SecAggClient(u, vectors[u], field, round_index) for u in ids}

    def send(message: bytes, client: int, name: str) -> bytes:
        return channel.transfer_bytes(message, direction="uplink", client=client, name=name)

    def deliver(message: bytes, client: int, name: str) -> bytes:
        return channel.transfer_bytes(message, direction="downlink", client=client, name=name)

    def present(stage: Stage) -> list[int]:
        before = STAGES.index(stage)
        after = STAGES.index(dropout_after)
        return [u for u in ids if u not in gone or before <= after]

    for u in ids:
        clients[u].receive_setup(deliver(server.setup(u), u, "secagg.setup"))
    for u in present("advertise_keys"):
        server.receive_keys(u, send(clients[u].advertise(), u, "secagg.advertise_keys"))
    for u in present("advertise_keys"):
        clients[u].receive_keys(deliver(server.neighbour_keys(u), u, "secagg.neighbour_keys"))
    sharers = [u for u in present("share_keys") if u in server.keys]
    for u in sharers:
        server.receive_shares(u, send(clients[u].share_keys(), u, "secagg.share_keys"))
    for u in sharers:
        clients[u].receive_shares(deliver(server.forwarded(u), u, "secagg.forward_shares"))
    for u in (v for v in present("masked_input") if v in sharers):
        server.receive_masked(u, send(clients[u].masked_input(), u, "secagg.masked_input"))
    if not server.inputs:
        raise FedsearchError(f"secure aggregation round {round_index}: every client dropped out")
    answering = [u for u in server.inputs if u not in gone or dropout_after != "masked_input"]
    for u in answering:
        request = deliver(server.unmask_request(u), u, "secagg.unmask_request")
        server.receive_unmask(u, send(clients[u].unmask(request), u, "secagg.unmasking"))
    total = server.aggregate()
    return SecureSum(total, tuple(server.inputs), tuple(sorted(gone)))
