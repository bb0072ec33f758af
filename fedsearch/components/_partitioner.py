"""Partitioner components: how training examples are dealt out to clients."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np

from fedsearch.components._base import Component


class Partitioner(Component):
    """Splits the training examples among clients.

    Required: ``partition``. It must be deterministic for a given ``rng``.
    """

    kind: ClassVar[str] = "partitioner"

    @abstractmethod
    def partition(
        self,
        labels: np.ndarray,
        num_clients: int,
        rng: np.random.Generator,
        groups: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Assign examples to clients.

        Args:
            labels: Label of every training example, shape ``(N,)``.
            num_clients: How many clients to create.
            rng: The only source of randomness to use.
            groups: Natural client id of every example (writer, device), or None.

        Returns:
            One int64 array of example indices per client; every client gets at
            least one example and no example goes to two clients.
        """
