"""Objective components: extra objectives measured on each trial's final model."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

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
