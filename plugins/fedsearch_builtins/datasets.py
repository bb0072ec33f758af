"""The bundled scikit-learn digits dataset (no download)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from pydantic import Field

from fedsearch import ComponentParams, Dataset, DatasetSplits, Registrar, hookimpl

DIGITS_SPLIT_SEED = 0
"""Fixed seed of the digits train/test split, so the test set never changes."""


class DigitsParams(ComponentParams):
    """Knobs of the digits dataset."""

    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2


class Digits(Dataset):
    """scikit-learn's 1797 8x8 handwritten digits, 10 classes, pixels scaled to [0, 1]."""

    name = "digits"
    class_names = tuple("0123456789")
    description = "scikit-learn digits, 1x8x8, 10 classes (bundled)"
    Params = DigitsParams

    def load(self) -> DatasetSplits:
        """Load the bundled digits and split off a stratified, fixed test set."""
        # imported on use: scikit-learn takes about 0.7 s to import
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
        labels = bunch.target.astype(np.int64)
        train_x, test_x, train_y, test_y = train_test_split(
            images,
            labels,
            test_size=self.params.test_fraction,
            random_state=DIGITS_SPLIT_SEED,
            stratify=labels,
        )
        return DatasetSplits(
            train_inputs=torch.from_numpy(train_x),
            train_labels=torch.from_numpy(train_y),
            test_inputs=torch.from_numpy(test_x),
            test_labels=torch.from_numpy(test_y),
            num_classes=10,
        )


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the digits dataset."""
    register.dataset(Digits)
