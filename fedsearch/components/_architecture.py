"""Architecture components: student model families."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from torch import nn

from fedsearch.components._base import Component


class Architecture(Component):
    """A model family that builds a student (or teacher) network.

    Required: ``build``. The input shape and class count come from the dataset;
    everything else (depth, widths, channels) comes from ``Params``.
    """

    kind: ClassVar[str] = "architecture"

    @abstractmethod
    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """Return a freshly initialised model.

        Args:
            input_shape: Shape of one example, channels first (``(1, 8, 8)`` for digits).
            num_classes: Number of output logits.

        Returns:
            A module mapping a batch ``(N, *input_shape)`` to logits ``(N, num_classes)``.
            Seed torch before calling to get reproducible weights.
        """

    def width_scaled(self, ratio: float) -> dict[str, Any] | None:
        """Params of a ``ratio``-wide sub-model that slices this one (None: not sliceable).

        Optional; enables heterogeneous tiers (``docs/heterogeneous-clients.md``).
        The sub-model must have the same parameter names, and every tensor's
        shape at most this model's in every dimension: the tier's weights are
        the leading (or rolling) channels of each hidden dimension.
        """
        return None
