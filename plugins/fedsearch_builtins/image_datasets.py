"""File-backed image datasets: MNIST, Fashion-MNIST (IDX gzip) and CIFAR-10 (pickle batches).

Each reads a local folder given by ``dataset.params.root`` or by
``$FEDSEARCH_DATA_DIR/<name>/``, verifies the files' MD5 against the
published values, and downloads from the publisher only when
``download = true``.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from fedsearch import ComponentParams, ConfigError, Dataset, DatasetSplits, Registrar, hookimpl
from fedsearch_builtins._datafiles import locate, verify_checksums
from fedsearch_builtins._safe_pickle import load_restricted

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


class FileDatasetParams(ComponentParams):
    """Where a file-backed dataset lives and how it is checked."""

    root: str | None = None
    """Folder holding the files (or its parent); default ``$FEDSEARCH_DATA_DIR/<name>``."""
    download: bool = False
    """Download the files from their publisher when they are missing."""
    verify: bool = True
    """Check every file's MD5 against the published value."""
    checksums: dict[str, str] | None = None
    """MD5 per file name, replacing the published ones (for private copies)."""


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read a gzip-compressed IDX file (images ``(N, H, W)`` or labels ``(N,)``) as uint8."""
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ConfigError(
            f"{path} is not a readable gzip file ({error}); replace it with the original",
            field="dataset.params.root",
        ) from error
    dims = 3 if expected_magic == IDX_IMAGES_MAGIC else 1
    header = 4 * (1 + dims)
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != expected_magic:
        raise ConfigError(
            f"{path} is not an IDX file with magic number {expected_magic}; "
            "replace it with the original",
            field="dataset.params.root",
        )
    shape = struct.unpack(f">{dims}I", raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise ConfigError(
            f"{path} is truncated: header says {shape} but holds {len(raw) - header} bytes; "
            "replace it with the original",
            field="dataset.params.root",
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


class IDXDataset(Dataset):
    """An MNIST-format dataset: four IDX gzip files, 28x28 grey images, 10 classes."""

    subdir: ClassVar[str]
    base_url: ClassVar[str]
    md5: ClassVar[dict[str, str]]
    Params = FileDatasetParams

    files: ClassVar[tuple[str, str, str, str]] = (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    )

    def folder(self) -> Path:
        """The folder holding the four files (downloaded first when asked)."""
        params: FileDatasetParams = self.params
        return locate(
            self.name,
            root=params.root,
            subdir=self.subdir,
            required=self.files,
            download=params.download,
            urls={name: self.base_url + name for name in self.files},
            hint=f"they are published at {self.base_url} (or set dataset.params.download = true)",
        )

    def load(self) -> DatasetSplits:
        """Read, check and scale the images to [0, 1] as ``(N, 1, 28, 28)`` float32."""
        params: FileDatasetParams = self.params
        folder = self.folder()
        if params.verify:
            verify_checksums(self.name, folder, params.checksums or self.md5)
        train_x, train_y, test_x, test_y = (
            read_idx(folder / name, IDX_IMAGES_MAGIC if "images" in name else IDX_LABELS_MAGIC)
            for name in self.files
        )
        for images, labels, split in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
            if len(images) != len(labels):
                raise ConfigError(
                    f"{self.name} {split} files disagree: {len(images)} images but "
                    f"{len(labels)} labels; replace them with the originals",
                    field="dataset.params.root",
                )
            if len(labels) and labels.max() > 9:
                raise ConfigError(
                    f"{self.name} {split} labels go up to {labels.max()}, expected 0..9; "
                    "replace the label file with the original",
                    field="dataset.params.root",
                )
        return DatasetSplits(
            train_inputs=_scaled(train_x),
            train_labels=torch.from_numpy(train_y.astype(np.int64)),
            test_inputs=_scaled(test_x),
            test_labels=torch.from_numpy(test_y.astype(np.int64)),
            num_classes=10,
        )


def _scaled(images: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(images.copy()).unsqueeze(1)
    return tensor.to(torch.float32).div_(255.0)


class MNIST(IDXDataset):
    """MNIST handwritten digits (LeCun et al.): 60000 train, 10000 test, 1x28x28."""

    name = "mnist"
    description = "MNIST digits, 1x28x28, 10 classes (IDX gzip files)"
    subdir = "mnist"
    base_url = "http://yann.lecun.com/exdb/mnist/"
    md5: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }


class FashionMNIST(IDXDataset):
    """Fashion-MNIST (Xiao et al. 2017): Zalando article images in MNIST's format."""

    name = "fashion_mnist"
    description = "Fashion-MNIST, 1x28x28, 10 classes (IDX gzip files)"
    subdir = "fashion-mnist"
    base_url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    md5: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }


CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_TARBALL = "cifar-10-python.tar.gz"
CIFAR_TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


class CIFAR10(Dataset):
    """CIFAR-10 (Krizhevsky 2009), python version: 50000 train, 10000 test, 3x32x32.

    The folder holds the six pickle batches (the ``cifar-10-batches-py``
    folder of the tarball); with ``download = true`` the tarball is fetched,
    checked and unpacked there.
    """

    name = "cifar10"
    description = "CIFAR-10, 3x32x32, 10 classes (python pickle batches)"
    Params = FileDatasetParams
    md5: ClassVar[dict[str, str]] = {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    }

    def folder(self) -> Path:
        """The folder holding the six batches (downloaded and unpacked first when asked)."""
        params: FileDatasetParams = self.params
        hint = f"unpack {CIFAR_URL} (or set dataset.params.download = true)"
        for subdir in ("cifar-10-batches-py", "cifar10/cifar-10-batches-py"):
            try:
                return locate(
                    self.name,
                    root=params.root,
                    subdir=subdir,
                    required=CIFAR_BATCHES,
                    download=False,
                    urls={},
                    hint=hint,
                )
            except ConfigError:
                continue
        folder = locate(
            self.name,
            root=params.root,
            subdir="cifar10",
            required=(CIFAR_TARBALL,),
            download=params.download,
            urls={CIFAR_TARBALL: CIFAR_URL} if params.download else {},
            hint=hint.replace("unpack", "put the batches of") + " in a cifar-10-batches-py folder",
        )
        verify_checksums(self.name, folder, {CIFAR_TARBALL: CIFAR_TARBALL_MD5})
        with tarfile.open(folder / CIFAR_TARBALL, "r:gz") as archive:
            archive.extractall(folder, filter="data")
        return folder / "cifar-10-batches-py"

    def load(self) -> DatasetSplits:
        """Read the batches; pixels scaled to [0, 1] as ``(N, 3, 32, 32)`` float32."""
        params: FileDatasetParams = self.params
        folder = self.folder()
        if params.verify:
            verify_checksums(self.name, folder, params.checksums or self.md5)
        train = [_read_cifar_batch(folder / name) for name in CIFAR_BATCHES[:-1]]
        test_x, test_y = _read_cifar_batch(folder / CIFAR_BATCHES[-1])
        train_x = np.concatenate([images for images, _ in train])
        train_y = np.concatenate([labels for _, labels in train])
        return DatasetSplits(
            train_inputs=torch.from_numpy(train_x).to(torch.float32).div_(255.0),
            train_labels=torch.from_numpy(train_y),
            test_inputs=torch.from_numpy(test_x).to(torch.float32).div_(255.0),
            test_labels=torch.from_numpy(test_y),
            num_classes=10,
        )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as stream:
            batch = load_restricted(stream, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        IndexError,
        KeyError,
        TypeError,
        ValueError,
    ) as error:
        raise ConfigError(
            f"{path} is not a CIFAR-10 python batch ({error!r}); replace it with the original",
            field="dataset.params.root",
        ) from error
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ConfigError(
            f"{path} holds data of shape {data.shape} and {len(labels)} labels, expected "
            "(N, 3072) and N; replace it with the original",
            field="dataset.params.root",
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ConfigError(f"{path} has labels outside 0..9", field="dataset.params.root")
    return data.reshape(-1, 3, 32, 32), labels


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register MNIST, Fashion-MNIST and CIFAR-10."""
    register.dataset(MNIST)
    register.dataset(FashionMNIST)
    register.dataset(CIFAR10)
