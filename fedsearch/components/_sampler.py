"""Sampler components: the search strategy of a study."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import optuna

from fedsearch.components._base import Component


class Sampler(Component):
    """Builds the Optuna sampler that proposes trial parameters.

    Required: ``create``. Constraints (``max_model_bytes`` ...) reach the
    sampler through Optuna: each trial records them with ``trial.set_constraint``
    and Optuna's samplers read ``FrozenTrial.constraints``; a custom sampler
    should prefer trials whose constraint values are all <= 0.
    """

    kind: ClassVar[str] = "sampler"
    uses_history: ClassVar[bool] = False
    """True when the sampler learns from finished trials (TPE, GP): a warm-started
    study then shows it the earlier study's trials as well."""

    @abstractmethod
    def create(self, *, seed: int | None) -> optuna.samplers.BaseSampler:
        """Return a new sampler.

        Args:
            seed: Seed for reproducible proposals, or None.
        """
