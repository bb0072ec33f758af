"""Objective components: extra objectives measured on each finished trial."""

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

    Call order: once per finished trial, after its training and scoring, the
    trial calls ``measure_trial`` with its compressed artifact, the model
    decoded from it and the user attributes it recorded (a tiered trial: its
    main tier's artifact and model). The default ``measure_trial`` measures
    the model with ``measure``; an objective of more than the model (the
    stored bytes, the run's privacy budget, the simulated time) overrides
    ``measure_trial`` and lets ``measure`` raise a ``PluginError`` that says so.
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

    def measure_trial(
        self,
        artifact: bytes,
        model: nn.Module,
        input_shape: tuple[int, ...],
        attributes: Mapping[str, Any],
    ) -> float:
        """Measure the finished trial: its artifact, model and recorded user attributes.

        The trial calls this; the default is ``measure(model, input_shape)``.
        Override it for objectives of what ships (the artifact in a deployment
        format: ``deploy_bytes``) or of what the trial recorded (its privacy
        guarantee ``epsilon``, its simulated ``round_time_s``).

        Args:
            artifact: The trial's compressed artifact (``model_bytes`` is its length).
            model: The model decoded from it, in eval mode.
            input_shape: Shape of one example, channels first.
            attributes: The trial's user attributes recorded so far.

        Returns:
            The objective value.
        """
        return self.measure(model, input_shape)
