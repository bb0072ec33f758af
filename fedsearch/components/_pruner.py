"""Pruner components: multi-fidelity early stopping of trials over federated rounds."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from fedsearch.components._base import Component


@dataclass(frozen=True)
class RungPoint:
    """Where one trial stood when it reached a rung (a federated round).

    Attributes:
        trial: The trial's number.
        round: The rung's round (1-based).
        val_accuracy: Validation accuracy of the global model after that round.
        model_bytes: Length of the artifact the trial's weights would make now.
        comm_bytes: Bytes that crossed the channel so far, one-time bytes included.
    """

    trial: int
    round: int
    val_accuracy: float
    model_bytes: int
    comm_bytes: int

    def as_dict(self) -> dict[str, float | int]:
        """JSON-friendly form, as stored in the study's storage."""
        return {
            "trial": self.trial,
            "round": self.round,
            "val_accuracy": self.val_accuracy,
            "model_bytes": self.model_bytes,
            "comm_bytes": self.comm_bytes,
        }


class Pruner(Component):
    """Stops trials that are behind the others at the same fidelity (rung).

    Required: ``rungs`` and ``decide``. Call order, once per trial: fedsearch
    asks ``rungs(num_rounds)`` when the trial starts; after each of those
    rounds it measures the trial's ``RungPoint``, stores it in the study's
    storage (so every worker on a shared database sees it), collects the
    points other trials stored at the same round (running, finished or
    pruned ones; failed ones are left out) and calls ``decide``. A reason
    returned stops the trial (``optuna.TrialPruned``; its rung and the reason
    become user attributes); None lets it train on. Nothing waits for other
    trials, so workers never block each other (asynchronous, like ASHA).
    A pruner keeps no state between calls: everything it needs is in the points.
    """

    kind: ClassVar[str] = "pruner"

    @abstractmethod
    def rungs(self, num_rounds: int) -> tuple[int, ...]:
        """Rounds (1-based, increasing, each below ``num_rounds``) at which trials are compared."""

    @abstractmethod
    def decide(self, point: RungPoint, peers: Sequence[RungPoint]) -> str | None:
        """Whether a trial stops at a rung.

        Args:
            point: The trial's point at the rung.
            peers: Points other trials stored at the same rung.

        Returns:
            Why the trial stops (one line), or None to let it go on.
        """
