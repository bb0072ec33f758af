"""Client partitions: IID and Dirichlet label skew."""

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


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the IID and Dirichlet partitioners."""
    register.partitioner(IID)
    register.partitioner(Dirichlet)
