"""Progress reporting hooks for long runs (the CLI shows them with rich)."""

from __future__ import annotations

import optuna

from fedsearch.federated import RoundRecord


class ProgressReporter:
    """Receives progress events; every method is a no-op here, override what you show."""

    def teacher_started(self, rounds: int) -> None:
        """The teacher starts training for ``rounds`` rounds (not called when cached)."""

    def teacher_finished(
        self,
        val_accuracy: float,
        test_accuracy: float,
        cached: bool,
        *,
        pretrained: str | None = None,
    ) -> None:
        """The teacher is ready: trained, loaded from the study's cache, or (``pretrained``,
        the file's path) loaded from a pretrained file."""

    def trials_started(self, planned: int | None, already_finished: int) -> None:
        """The optimisation loop starts; ``planned`` is None when only a timeout bounds it."""

    def trial_started(self, number: int, rounds: int) -> None:
        """Trial ``number`` starts its ``rounds`` federated rounds."""

    def round_finished(self, record: RoundRecord) -> None:
        """A federated round ended (teacher or trial)."""

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """A trial ended, in any state."""
