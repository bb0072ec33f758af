"""SecAgg+'s sparse communication graph: a Harary graph over a random order of the clients."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def default_degree(count: int) -> int:
    """Neighbours a client shares with when unset: ``3 * log2(n)`` rounded up to even, >= 8."""
    wanted = max(8, 2 * math.ceil(1.5 * math.log2(max(count, 2))))
    return min(count - 1, wanted)


def harary_graph(
    clients: Sequence[int], degree: int, rng: np.random.Generator
) -> dict[int, tuple[int, ...]]:
    """Each client's neighbours (sorted): ``degree // 2`` on each side in a random ring order.

    Bell et al. 2020 (SecAgg+) use a Harary graph with the clients placed at
    random; a degree of ``n - 1`` or more gives the complete graph (SecAgg).
    An odd degree is rounded up to even.
    """
    count = len(clients)
    if degree >= count - 1:
        return {u: tuple(sorted(v for v in clients if v != u)) for u in clients}
    half = (degree + 1) // 2
    order = [clients[int(i)] for i in rng.permutation(count)]
    neighbours: dict[int, set[int]] = {u: set() for u in clients}
    for position, u in enumerate(order):
        for step in range(1, half + 1):
            v = order[(position + step) % count]
            neighbours[u].add(v)
            neighbours[v].add(u)
    return {u: tuple(sorted(found)) for u, found in neighbours.items()}
