"""Objective components: extra objectives measured on each trial's final model."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from torch import nn

from fedsearch.components._base import Component


class Objective(Component):
    """An extra objective, off unless a study lists it under ``search.objectives``.

    Required: ``measure``, and the class attributes ``metric`` (the objective's
    name in Optuna and the dashboard, e.g. ``flops``) and ``direction``. The
    study's objectives are then ``val_accuracy``, ``model_bytes``,
    ``comm_bytes`` and each enabled extra objective, in the order listed.
    """

    kind: ClassVar[str] = "objective"
    metric: ClassVar[str]
    direction: ClassVar[Literal["minimize", "maximize"]] = "minimize"
    trial_metric: ClassVar[str | None] = None
    """A measure of the trial's simulation (``round_time``) to report instead of
    measuring the model; only trials that produce it (heterogeneous tiers) can."""

    @abstractmethod
    def measure(self, model: nn.Module, input_shape: tuple[int, ...]) -> float:
        """Measure the trial's final model.

        Args:
            model: The model decoded from the trial's compressed artifact (the
                one whose accuracy is the accuracy objective), in eval mode.
            input_shape: Shape of one example, channels first.

        Returns:
            The objective value.
        """

    def measure_artifact(
        self, artifact: bytes, model: nn.Module, input_shape: tuple[int, ...]
    ) -> float:
        """Measure the trial's final model together with its artifact.

        ``measure_trial`` calls this; the default is ``measure(model, input_shape)``.
        Override it for objectives of what ships, such as the size of the
        artifact in a deployment format.

        Args:
            artifact: The trial's compressed artifact (``model_bytes`` is its length).
            model: The model decoded from it, in eval mode.
            input_shape: Shape of one example, channels first.

        Returns:
            The objective value.
        """
        return self.measure(model, input_shape)

    def measure_trial(
        self,
        artifact: bytes,
        model: nn.Module,
        input_shape: tuple[int, ...],
        attributes: Mapping[str, Any],
    ) -> float:
        """Measure the trial: its artifact, model and recorded user attributes.

        The trial calls this; the default is ``measure_artifact``. Override it
        for objectives of what the trial recorded, such as its privacy
        guarantee (``epsilon``).

        Args:
            artifact: The trial's compressed artifact.
            model: The model decoded from it, in eval mode.
            input_shape: Shape of one example, channels first.
            attributes: The trial's user attributes recorded so far.

        Returns:
            The objective value.
        """
        return self.measure_artifact(artifact, model, input_shape)
