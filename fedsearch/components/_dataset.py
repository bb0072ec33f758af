"""Dataset components: where examples come from."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from fedsearch.components._base import Component


@dataclass(frozen=True)
class DatasetSplits:
    """A dataset loaded into memory, split into train and test parts.

    Attributes:
        train_inputs: Float32 tensor ``(N, C, H, W)`` (or ``(N, F)``), already normalised.
        train_labels: Int64 tensor ``(N,)`` with values in ``[0, num_classes)``.
        test_inputs: Like ``train_inputs``; never seen by the search.
        test_labels: Like ``train_labels``.
        num_classes: Number of classes.
        train_groups: Natural client (writer, device) of every training example, or None.
    """

    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    test_inputs: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    train_groups: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(self.train_inputs.shape[1:])


class Dataset(Component):
    """A source of labelled examples.

    Required: ``load``. A dataset that reads files takes its folder from its
    ``Params`` and fails with a ``ConfigError`` that says where to put the
    files when they are missing.
    """

    kind: ClassVar[str] = "dataset"
    class_names: ClassVar[tuple[str, ...]] = ()
    """Names of the classes by label, when the dataset knows them (exports record them)."""

    @abstractmethod
    def load(self) -> DatasetSplits:
        """Load the whole dataset into memory (deterministically)."""
