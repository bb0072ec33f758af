"""Sampler components: the search strategy of a study."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import optuna

from fedsearch.components._base import Component

ConstraintsFunc = Callable[[optuna.trial.FrozenTrial], Sequence[float]]


class Sampler(Component):
    """Builds the Optuna sampler that proposes trial parameters.

    Required: ``create``.
    """

    kind: ClassVar[str] = "sampler"

    @abstractmethod
    def create(
        self, *, seed: int | None, constraints_func: ConstraintsFunc | None = None
    ) -> optuna.samplers.BaseSampler:
        """Return a new sampler.

        Args:
            seed: Seed for reproducible proposals, or None.
            constraints_func: Feasibility of a finished trial (values <= 0 are
                feasible), for samplers that support constraints.
        """
