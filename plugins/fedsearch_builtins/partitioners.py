"""Client partitions: IID, Dirichlet label skew, pathological shards, natural, quantity skew."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from fedsearch import ComponentParams, ConfigError, Partitioner, Registrar, hookimpl


def _check_enough_examples(num_examples: int, num_clients: int) -> None:
    if num_examples < num_clients:
        raise ConfigError(
            f"{num_clients} clients but only {num_examples} training examples; "
            "lower federation.num_clients",
            field="federation.num_clients",
        )


class IID(Partitioner):
    """Shuffle, then deal equal shares."""

    name = "iid"
    description = "uniformly random equal shares"

    def partition(
        self,
        labels: np.ndarray,
        num_clients: int,
        rng: np.random.Generator,
        groups: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Equal random shares (sizes differ by at most one)."""
        _check_enough_examples(len(labels), num_clients)
        return [
            np.sort(share) for share in np.array_split(rng.permutation(len(labels)), num_clients)
        ]


class DirichletParams(ComponentParams):
    """Knobs of the Dirichlet partitioner."""

    alpha: Annotated[float, Field(gt=0.0)] = 0.5


class Dirichlet(Partitioner):
    """Label skew: each class is split among clients in Dirichlet(alpha) proportions.

    Small ``alpha`` gives clients few classes; large ``alpha`` approaches IID.
    A client left empty receives one example from the largest client.
    """

    name = "dirichlet"
    description = "Dirichlet(alpha) label skew"
    Params = DirichletParams

    def partition(
        self,
        labels: np.ndarray,
        num_clients: int,
        rng: np.random.Generator,
        groups: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Split each class by Dirichlet proportions."""
        _check_enough_examples(len(labels), num_clients)
        shares: list[list[int]] = [[] for _ in range(num_clients)]
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            proportions = rng.dirichlet(np.full(num_clients, self.params.alpha))
            cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(int)
            for client, part in enumerate(np.split(members, cuts)):
                shares[client].extend(part.tolist())
        for client in range(num_clients):
            if not shares[client]:
                largest = max(range(num_clients), key=lambda c: len(shares[c]))
                shares[client].append(shares[largest].pop())
        return [np.sort(np.array(share, dtype=np.int64)) for share in shares]


class ShardsParams(ComponentParams):
    """Knobs of the pathological shards partitioner."""

    shards_per_client: Annotated[int, Field(ge=1)] = 2


class Shards(Partitioner):
    """Pathological non-IID (McMahan et al. 2017): sort by label, cut into shards, deal them.

    The examples are sorted by label (ties broken at random), cut into
    ``num_clients * shards_per_client`` equal shards, and each client gets
    ``shards_per_client`` shards chosen at random; with 2 shards most clients
    see only two digits.
    """

    name = "shards"
    description = "pathological non-IID: label-sorted shards per client (McMahan et al.)"
    Params = ShardsParams

    def partition(
        self,
        labels: np.ndarray,
        num_clients: int,
        rng: np.random.Generator,
        groups: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Deal ``shards_per_client`` random label-sorted shards to each client."""
        num_shards = num_clients * self.params.shards_per_client
        _check_enough_examples(len(labels), num_shards)
        shuffled = rng.permutation(len(labels))
        by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
        shards = np.array_split(by_label, num_shards)
        dealt = rng.permutation(num_shards).reshape(num_clients, self.params.shards_per_client)
        return [np.sort(np.concatenate([shards[s] for s in row])) for row in dealt]


class Natural(Partitioner):
    """The dataset's own clients (writers, devices), e.g. FEMNIST's writers.

    With as many clients as groups, each group is one client; with fewer, the
    groups are shuffled and dealt round-robin so each client holds whole groups.
    """

    name = "natural"
    description = "one client per natural group (writer), or whole groups per client"

    def partition(
        self,
        labels: np.ndarray,
        num_clients: int,
        rng: np.random.Generator,
        groups: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Group the examples by ``groups`` and deal the groups to clients."""
        if groups is None:
            raise ConfigError(
                "the natural partitioner needs a dataset with natural groups (such as "
                "femnist's writers); choose another federation.partition",
                field="federation.partition",
            )
        group_ids, inverse = np.unique(groups, return_inverse=True)
        if num_clients > len(group_ids):
            raise ConfigError(
                f"{num_clients} clients but the dataset has only {len(group_ids)} natural "
                f"groups; set federation.num_clients to at most {len(group_ids)}",
                field="federation.num_clients",
            )
        order = np.argsort(inverse, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
        dealt = rng.permutation(len(group_ids)) if num_clients < len(group_ids) else None
        if dealt is None:
            return [np.sort(m) for m in members]
        return [
            np.sort(np.concatenate([members[g] for g in dealt[client::num_clients]]))
            for client in range(num_clients)
        ]


class QuantitySkewParams(ComponentParams):
    """Knobs of the quantity-skew partitioner."""

    alpha: Annotated[float, Field(gt=0.0)] = 0.5
    """Dirichlet concentration of the client sizes: small means very unequal."""


class QuantitySkew(Partitioner):
    """Unequal client sizes from Dirichlet(alpha) proportions; labels stay IID.

    Every client keeps at least one example.
    """

    name = "quantity_skew"
    description = "Dirichlet(alpha) client sizes, IID labels"
    Params = QuantitySkewParams

    def partition(
        self,
        labels: np.ndarray,
        num_clients: int,
        rng: np.random.Generator,
        groups: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Cut a random permutation at Dirichlet proportions (one example minimum each)."""
        _check_enough_examples(len(labels), num_clients)
        proportions = rng.dirichlet(np.full(num_clients, self.params.alpha))
        spare = len(labels) - num_clients
        sizes = 1 + np.floor(proportions * spare).astype(np.int64)
        sizes[np.argmax(proportions)] += len(labels) - sizes.sum()
        cuts = np.cumsum(sizes)[:-1]
        return [np.sort(share) for share in np.split(rng.permutation(len(labels)), cuts)]


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the built-in partitioners."""
    for partitioner in (IID, Dirichlet, Shards, Natural, QuantitySkew):
        register.partitioner(partitioner)
