"""The study's accuracy floor: below it a model is no better than guessing, so infeasible."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fedsearch.config import ConstraintsConfig

FLOOR_STANDARD_ERRORS = 3.0
"""Standard errors above the majority-class accuracy of the default floor."""


@dataclass(frozen=True)
class AccuracyFloor:
    """The validation accuracy a trial must reach to be feasible.

    Attributes:
        value: The floor.
        source: ``"min_accuracy"`` when the study sets it, else ``"default"``.
        majority_accuracy: Accuracy of always predicting the validation
            split's most frequent class.
    """

    value: float
    source: str
    majority_accuracy: float

    def as_dict(self) -> dict[str, float | str]:
        """JSON-friendly, as stored in the study's ``accuracy_floor`` user attribute."""
        return {
            "value": self.value,
            "source": self.source,
            "majority_accuracy": self.majority_accuracy,
        }


def accuracy_floor(constraints: ConstraintsConfig, val_labels: torch.Tensor) -> AccuracyFloor:
    """``constraints.min_accuracy`` when set; else the default floor of ``val_labels``.

    The default is the majority-class accuracy ``p`` of the validation split
    plus ``FLOOR_STANDARD_ERRORS`` standard errors of an accuracy measured on
    its ``n`` examples, ``sqrt(p (1 - p) / n)``: a model that does no better
    than guessing the most frequent class stays under it (at 3 standard
    errors, with probability about 0.999).
    """
    counts = torch.bincount(val_labels.reshape(-1).long())
    total = int(counts.sum())
    majority = int(counts.max()) / total if total else 0.0
    if constraints.min_accuracy is not None:
        return AccuracyFloor(constraints.min_accuracy, "min_accuracy", majority)
    margin = FLOOR_STANDARD_ERRORS * math.sqrt(majority * (1.0 - majority) / max(total, 1))
    return AccuracyFloor(min(1.0, majority + margin), "default", majority)
