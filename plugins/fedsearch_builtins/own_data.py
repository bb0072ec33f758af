"""Your own data without a plugin: a folder of images by class, or NumPy ``.npz`` arrays.

Both may come with a clients file that assigns every training example to a
natural client (writer, device, site); ``federation.partition = { name =
"natural" }`` then gives each client its own examples. Relative paths are
relative to the folder fedsearch runs in.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from fedsearch import ComponentParams, ConfigError, Dataset, DatasetSplits, Registrar, hookimpl

ImageSize = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=2, max_length=2)]

SPLIT_SEED = 0
"""Fixed seed of the train/test split carved when there is no test file."""


def _error(message: str, field: str) -> ConfigError:
    return ConfigError(message, field=f"dataset.params.{field}")


def _existing(path: str | None, field: str, kind: str = "file") -> Path:
    if not path:
        raise _error(f"set it to the {kind} holding your data", field)
    found = Path(path).expanduser()
    if not (found.is_dir() if kind == "folder" else found.is_file()):
        raise _error(f"{found} is not an existing {kind}; fix the path", field)
    return found


class OwnDataParams(ComponentParams):
    """Where the test examples come from, and the optional clients file."""

    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    """Share of the examples held out as the test split when no test data is given."""
    clients_file: str | None = None
    """Natural clients: a text file with one client id (any string) per line per
    training example, in order (npz); or lines ``relative/path,client`` (image folder)."""


def _splits(
    x: np.ndarray,
    y: np.ndarray,
    test: tuple[np.ndarray, np.ndarray] | None,
    groups: np.ndarray | None,
    test_fraction: float,
) -> DatasetSplits:
    """Train/test splits of ``x, y``: ``test`` when given, else a stratified fixed split."""
    num_classes = int(max(y.max(), test[1].max() if test is not None else 0)) + 1
    if test is None:
        positions = np.arange(len(y))
        counts = np.bincount(y)
        stratify = y if counts[counts > 0].min() >= 2 else None
        # imported on use: scikit-learn takes about 0.7 s to import
        from sklearn.model_selection import train_test_split

        train, held = train_test_split(
            positions, test_size=test_fraction, random_state=SPLIT_SEED, stratify=stratify
        )
        train, held = np.sort(train), np.sort(held)
        test = (x[held], y[held])
        x, y = x[train], y[train]
        groups = groups[train] if groups is not None else None
    return DatasetSplits(
        train_inputs=_as_inputs(x),
        train_labels=torch.from_numpy(y.astype(np.int64)),
        test_inputs=_as_inputs(test[0]),
        test_labels=torch.from_numpy(test[1].astype(np.int64)),
        num_classes=num_classes,
        train_groups=groups,
    )


def _as_inputs(x: np.ndarray) -> torch.Tensor:
    """Float32 inputs; 8-bit integers (pixels) are scaled to [0, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(x))
    if x.dtype == np.uint8:
        return tensor.to(torch.float32).div_(255.0)
    return tensor.to(torch.float32)


def _client_ids(values: list[str], expected: int, path: Path) -> np.ndarray:
    if len(values) != expected:
        raise _error(
            f"{path} names {len(values)} clients but there are {expected} training examples; "
            "give one client id per example",
            "clients_file",
        )
    return np.unique(np.asarray(values), return_inverse=True)[1].astype(np.int64)


class NpzParams(OwnDataParams):
    """Knobs of the ``npz`` dataset."""

    path: str = ""
    """The ``.npz`` file with arrays ``x`` (examples, channels first) and ``y`` (labels)."""
    test_path: str | None = None
    """A second ``.npz`` with ``x`` and ``y`` as the test split (else ``test_fraction``)."""


def read_npz(path: Path, field: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` of an ``.npz`` file, checked; never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("x", "y") if key not in archive.files]
            if missing:
                raise _error(
                    f"{path} has no array {' or '.join(map(repr, missing))} (it holds "
                    f"{', '.join(archive.files) or 'nothing'}); save it with np.savez(path, x=..., "
                    "y=...)",
                    field,
                )
            x, y = archive["x"], archive["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise _error(
            f"{path} is not a readable .npz of plain arrays ({error}); save it with "
            "np.savez(path, x=..., y=...)",
            field,
        ) from None
    if x.ndim < 2 or x.dtype.kind not in "uif" or y.ndim != 1 or y.dtype.kind not in "ui":
        raise _error(
            f"{path}: x must be numeric with shape (N, ...) and y integer labels of shape (N,); "
            f"got x {x.dtype} {x.shape}, y {y.dtype} {y.shape}",
            field,
        )
    if len(x) != len(y) or len(y) == 0 or y.min() < 0:
        raise _error(
            f"{path}: x has {len(x)} examples and y {len(y)} labels, and labels must be "
            "0, 1, 2, ...; give one non-negative label per example",
            field,
        )
    return x, y


class Npz(Dataset):
    """Your NumPy arrays: ``x`` (N, ...) and ``y`` (N,) in an ``.npz`` file."""

    name = "npz"
    description = "your own arrays: x and y in a .npz file (optional test file, clients file)"
    Params = NpzParams

    def load(self) -> DatasetSplits:
        """Read the arrays (``allow_pickle=False``) and split them."""
        params: NpzParams = self.params
        x, y = read_npz(_existing(params.path, "path"), "path")
        test = None
        if params.test_path is not None:
            test = read_npz(_existing(params.test_path, "test_path"), "test_path")
            if test[0].shape[1:] != x.shape[1:]:
                raise _error(
                    f"test examples have shape {test[0].shape[1:]}, training ones "
                    f"{x.shape[1:]}; give both the same shape",
                    "test_path",
                )
        groups = None
        if params.clients_file is not None:
            path = _existing(params.clients_file, "clients_file")
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            groups = _client_ids(lines, len(y), path)
        return _splits(x, y, test, groups, params.test_fraction)


class ImageFolderParams(OwnDataParams):
    """Knobs of the ``image_folder`` dataset."""

    root: str = ""
    """A folder with one sub-folder of images per class (``root/cat/1.png``)."""
    test_root: str | None = None
    """A folder laid out like ``root`` holding the test images (else ``test_fraction``)."""
    size: ImageSize | None = None
    """``[height, width]`` to resize every image to; by default all must share one size."""
    mode: Literal["L", "RGB"] = "RGB"
    """``L``: one grey channel; ``RGB``: three channels."""


class ImageFolder(Dataset):
    """Your images, one sub-folder per class; class labels follow the sorted folder names."""

    name = "image_folder"
    description = "your own images, one sub-folder per class (read with Pillow)"
    Params = ImageFolderParams

    def load(self) -> DatasetSplits:
        """Read, resize and scale every image to [0, 1] as ``(N, C, H, W)`` float32."""
        params: ImageFolderParams = self.params
        root = _existing(params.root, "root", "folder")
        classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
        if not classes:
            raise _error(f"{root} has no class sub-folders; put each class's images in one", "root")
        files, labels = _image_files(root, classes, "root")
        x = _read_images(files, params)
        test = None
        if params.test_root is not None:
            test_root = _existing(params.test_root, "test_root", "folder")
            test_files, test_labels = _image_files(test_root, classes, "test_root")
            test = (_read_images(test_files, params), test_labels)
        groups = None
        if params.clients_file is not None:
            groups = _image_clients(_existing(params.clients_file, "clients_file"), root, files)
        return _splits(x, labels, test, groups, params.test_fraction)


def _pillow() -> ModuleType:
    """``PIL.Image``, or a ``ConfigError`` saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise _error(
            "the image_folder dataset reads images with Pillow: pip install 'fedsearch[images]'",
            "root",
        ) from None
    return Image


def _image_files(root: Path, classes: list[str], field: str) -> tuple[list[Path], np.ndarray]:
    extensions = set(_pillow().registered_extensions())
    files: list[Path] = []
    labels: list[int] = []
    for entry in sorted(path for path in root.iterdir() if path.is_dir()):
        if entry.name not in classes:
            raise _error(
                f"{entry} is a class the training folder does not have (its classes: "
                f"{', '.join(classes)}); use the same class folders",
                field,
            )
        images = sorted(
            path
            for path in entry.rglob("*")
            if path.is_file()
            and path.suffix.lower() in extensions
            and not path.name.startswith(".")
        )
        files += images
        labels += [classes.index(entry.name)] * len(images)
    if not files:
        raise _error(
            f"{root} holds no images Pillow can read; put images in its class folders", field
        )
    return files, np.asarray(labels, dtype=np.int64)


def _read_images(files: list[Path], params: ImageFolderParams) -> np.ndarray:
    image_module = _pillow()
    arrays: list[np.ndarray] = []
    for path in files:
        try:
            with image_module.open(path) as image:
                converted = image.convert(params.mode)
                if params.size is not None:
                    converted = converted.resize((params.size[1], params.size[0]))
                array = np.asarray(converted, dtype=np.uint8)
        except (OSError, ValueError) as error:  # UnidentifiedImageError is an OSError
            raise _error(
                f"{path} is not a readable image ({error}); remove or replace it", "root"
            ) from None
        if arrays and array.shape != arrays[0].shape:
            raise _error(
                f"{path} is {array.shape[1]}x{array.shape[0]}, {files[0]} is "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; set dataset.params.size = "
                "[height, width] to resize them all",
                "size",
            )
        arrays.append(array)
    stacked = np.stack(arrays)
    return stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)


def _image_clients(path: Path, root: Path, files: list[Path]) -> np.ndarray:
    """Client of every image, from ``relative/path,client`` lines."""
    assigned: dict[str, str] = {}
    with path.open(newline="") as stream:
        for number, row in enumerate(csv.reader(stream), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2:
                raise _error(
                    f"{path} line {number} has {len(row)} fields; write "
                    "'class/image.png,client' per line",
                    "clients_file",
                )
            assigned[Path(row[0].strip()).as_posix()] = row[1].strip()
    names = [file.relative_to(root).as_posix() for file in files]
    missing = [name for name in names if name not in assigned]
    if missing:
        raise _error(
            f"{path} assigns no client to {len(missing)} image(s), such as {missing[0]}; "
            "give every training image a line",
            "clients_file",
        )
    return _client_ids([assigned[name] for name in names], len(names), path)


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the ``npz`` and ``image_folder`` datasets."""
    register.dataset(Npz)
    register.dataset(ImageFolder)
