"""FEMNIST from LEAF (Caldas et al. 2018): per-writer JSON files, writers as natural clients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedsearch import ConfigError, Dataset, DatasetSplits, Registrar, hookimpl
from fedsearch_builtins._datafiles import candidate_folders, missing_files_error, verify_checksums
from fedsearch_builtins.image_datasets import FileDatasetParams

FEMNIST_CLASSES = 62
FEMNIST_PIXELS = 28 * 28
LEAF_HINT = (
    "generate them with LEAF (github.com/TalwalkarLab/leaf, data/femnist/preprocess.sh) and "
    "copy data/femnist/data/train/*.json and test/*.json into train/ and test/ sub-folders"
)


def read_leaf_json(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Read one LEAF JSON file.

    Returns:
        The writer ids, the images ``(N, 784)`` float32, the labels ``(N,)`` and
        each example's position in the writer list ``(N,)``.
    """
    try:
        content: dict[str, Any] = json.loads(path.read_text())
        users = [str(user) for user in content["users"]]
        counts = [int(count) for count in content["num_samples"]]
        user_data = content["user_data"]
        rows = [(user_data[user]["x"], user_data[user]["y"]) for user in users]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{path} is not a LEAF JSON file with users, num_samples and user_data "
            f"({error!r}); {LEAF_HINT}",
            field="dataset.params.root",
        ) from error
    if len(users) != len(counts) or any(
        len(x) != count or len(y) != count for (x, y), count in zip(rows, counts, strict=False)
    ):
        raise ConfigError(
            f"{path}: users, num_samples and user_data disagree; regenerate it with LEAF",
            field="dataset.params.root",
        )
    try:
        images = np.asarray([pixel for x, _ in rows for pixel in x], dtype=np.float32)
        labels = np.asarray([label for _, y in rows for label in y], dtype=np.int64)
    except ValueError as error:
        raise ConfigError(
            f"{path}: images are not lists of {FEMNIST_PIXELS} numbers ({error})",
            field="dataset.params.root",
        ) from error
    if images.size and images.shape[1:] != (FEMNIST_PIXELS,):
        raise ConfigError(
            f"{path}: images have {images.shape[1:]} values, expected {FEMNIST_PIXELS}",
            field="dataset.params.root",
        )
    if labels.size and (labels.min() < 0 or labels.max() >= FEMNIST_CLASSES):
        raise ConfigError(
            f"{path}: labels outside 0..{FEMNIST_CLASSES - 1}", field="dataset.params.root"
        )
    writers = np.repeat(np.arange(len(users)), counts)
    return users, images.reshape(-1, FEMNIST_PIXELS), labels, writers


class FEMNIST(Dataset):
    """LEAF FEMNIST: 62 classes of handwritten characters, 1x28x28, grouped by writer.

    The folder holds ``train/*.json`` and ``test/*.json`` as LEAF writes them.
    Every training example carries its writer as its group, so the ``natural``
    partitioner makes one client per writer. LEAF generates these files
    locally, so there is nothing to download and no published checksum; give
    ``checksums`` (paths relative to the folder) to pin a copy.
    """

    name = "femnist"
    description = "LEAF FEMNIST, 1x28x28, 62 classes, writers as natural clients (JSON)"
    Params = FileDatasetParams

    def folder(self) -> Path:
        """The first candidate folder with ``train/*.json`` and ``test/*.json``."""
        params: FileDatasetParams = self.params
        for folder in candidate_folders(params.root, "femnist-leaf"):
            if any((folder / "train").glob("*.json")) and any((folder / "test").glob("*.json")):
                return folder
        if params.download:
            raise ConfigError(
                f"femnist has no canonical download; {LEAF_HINT}", field="dataset.params.download"
            )
        raise missing_files_error(
            "femnist", params.root, "femnist-leaf", ["train/*.json", "test/*.json"], LEAF_HINT
        )

    def load(self) -> DatasetSplits:
        """Read every JSON file; writers are numbered in order of first appearance."""
        params: FileDatasetParams = self.params
        folder = self.folder()
        if params.verify and params.checksums:
            verify_checksums(self.name, folder, params.checksums)
        train_x, train_y, train_groups = self._read_split(folder / "train")
        test_x, test_y, _ = self._read_split(folder / "test")
        return DatasetSplits(
            train_inputs=torch.from_numpy(train_x).view(-1, 1, 28, 28),
            train_labels=torch.from_numpy(train_y),
            test_inputs=torch.from_numpy(test_x).view(-1, 1, 28, 28),
            test_labels=torch.from_numpy(test_y),
            num_classes=FEMNIST_CLASSES,
            train_groups=train_groups,
        )

    @staticmethod
    def _read_split(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        writer_ids: dict[str, int] = {}
        images, labels, groups = [], [], []
        for path in sorted(folder.glob("*.json")):
            users, x, y, positions = read_leaf_json(path)
            ids = np.array([writer_ids.setdefault(user, len(writer_ids)) for user in users])
            images.append(x)
            labels.append(y)
            groups.append(ids[positions] if len(ids) else positions)
        return np.concatenate(images), np.concatenate(labels), np.concatenate(groups)


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register FEMNIST."""
    register.dataset(FEMNIST)
