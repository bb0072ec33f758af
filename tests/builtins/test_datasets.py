"""File-backed datasets: tiny files written here, and the shared data when present."""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from fedsearch import ConfigError
from tests.conftest import SHARED_DATA

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_idx(folder: Path, rng: np.random.Generator, train: int = 12, test: int = 5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        header = struct.pack(">IIII", 2051, count, 28, 28)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(header + images.tobytes())
        )
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">II", 2049, count) + labels.tobytes())
        )


def checksums(folder: Path, names) -> dict[str, str]:
    return {name: md5(folder / name) for name in names}


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_dataset_reads_tiny_files_and_verifies_checksums(registry, tmp_path, name):
    folder = tmp_path / "idx"
    write_idx(folder, np.random.default_rng(0))
    dataset = registry.create(
        "dataset", name, {"root": str(folder), "checksums": checksums(folder, IDX_FILES)}
    )
    splits = dataset.load()
    assert splits.train_inputs.shape == (12, 1, 28, 28)
    assert splits.test_inputs.shape == (5, 1, 28, 28)
    assert splits.train_labels.tolist() == [i % 10 for i in range(12)]
    assert float(splits.train_inputs.min()) >= 0.0 and float(splits.train_inputs.max()) <= 1.0
    raw = gzip.decompress((folder / IDX_FILES[0]).read_bytes())[16:]
    assert splits.train_inputs[0, 0, 0, 0] == pytest.approx(raw[0] / 255.0)


def test_idx_dataset_reads_from_the_environment_folder(registry, tmp_path, monkeypatch):
    write_idx(tmp_path / "mnist", np.random.default_rng(1))
    monkeypatch.setenv("FEDSEARCH_DATA_DIR", str(tmp_path))
    splits = registry.create("dataset", "mnist", {"verify": False}).load()
    assert len(splits.train_labels) == 12


def test_missing_files_say_what_to_put_where(registry, tmp_path, monkeypatch):
    monkeypatch.delenv("FEDSEARCH_DATA_DIR", raising=False)
    with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte.gz.*dataset.params.root"):
        registry.create("dataset", "mnist", {"root": str(tmp_path / "nothing")}).load()


def test_published_checksums_reject_other_files(registry, tmp_path):
    write_idx(tmp_path, np.random.default_rng(2))
    with pytest.raises(ConfigError, match="corrupt or not the published file"):
        registry.create("dataset", "mnist", {"root": str(tmp_path)}).load()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "not a readable gzip"),
        (lambda b: gzip.compress(gzip.decompress(b)[:-7]), "truncated"),
        (lambda b: gzip.compress(b"\x00\x00\x08\x01" + gzip.decompress(b)[4:]), "magic"),
    ],
)
def test_corrupt_idx_files_are_named(registry, tmp_path, damage, message):
    write_idx(tmp_path, np.random.default_rng(3))
    target = tmp_path / IDX_FILES[0]
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(ConfigError, match=message) as error:
        registry.create("dataset", "mnist", {"root": str(tmp_path), "verify": False}).load()
    assert IDX_FILES[0] in str(error.value)


def write_leaf(folder: Path, writers: dict[str, int], rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    user_data = {
        user: {
            "x": rng.random((count, 784)).round(3).tolist(),
            "y": [int(v) for v in rng.integers(0, 62, count)],
        }
        for user, count in writers.items()
    }
    content = {
        "users": list(writers),
        "num_samples": list(writers.values()),
        "user_data": user_data,
    }
    (folder / "part_0.json").write_text(json.dumps(content))


def test_femnist_reads_leaf_json_with_writers_as_groups(registry, tmp_path):
    rng = np.random.default_rng(4)
    write_leaf(tmp_path / "train", {"f_a": 3, "f_b": 2, "f_c": 4}, rng)
    write_leaf(tmp_path / "test", {"f_a": 1, "f_b": 1, "f_c": 1}, rng)
    splits = registry.create("dataset", "femnist", {"root": str(tmp_path)}).load()
    assert splits.train_inputs.shape == (9, 1, 28, 28)
    assert splits.num_classes == 62
    assert splits.train_groups.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert len(splits.test_labels) == 3


def test_femnist_corrupt_and_inconsistent_files_are_named(registry, tmp_path):
    rng = np.random.default_rng(5)
    write_leaf(tmp_path / "train", {"f_a": 2}, rng)
    write_leaf(tmp_path / "test", {"f_a": 1}, rng)
    path = tmp_path / "train" / "part_0.json"
    content = json.loads(path.read_text())
    content["num_samples"] = [5]
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match="disagree"):
        registry.create("dataset", "femnist", {"root": str(tmp_path)}).load()
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"part_0\.json is not a LEAF JSON file"):
        registry.create("dataset", "femnist", {"root": str(tmp_path)}).load()


def test_femnist_missing_and_download_errors(registry, tmp_path):
    with pytest.raises(ConfigError, match="LEAF"):
        registry.create("dataset", "femnist", {"root": str(tmp_path)}).load()
    with pytest.raises(ConfigError, match="no canonical download"):
        registry.create("dataset", "femnist", {"root": str(tmp_path), "download": True}).load()


def write_cifar(folder: Path, rng: np.random.Generator, per_batch: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))


def test_cifar10_reads_pickle_batches(registry, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, np.random.default_rng(6))
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    params = {"root": str(tmp_path), "checksums": checksums(folder, names)}
    splits = registry.create("dataset", "cifar10", params).load()
    assert splits.train_inputs.shape == (20, 3, 32, 32)
    assert splits.test_inputs.shape == (4, 3, 32, 32)
    first = pickle.loads((folder / "data_batch_1").read_bytes())
    assert splits.train_labels[:4].tolist() == first[b"labels"]
    assert splits.train_inputs[0, 1, 0, 0] == pytest.approx(first[b"data"][0, 1024] / 255.0)
    with pytest.raises(ConfigError, match="corrupt or not the published"):
        registry.create("dataset", "cifar10", {"root": str(tmp_path)}).load()


def test_cifar10_corrupt_and_missing_batches_are_named(registry, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, np.random.default_rng(7))
    (folder / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="data_batch_3 is not a CIFAR-10 python batch"):
        registry.create("dataset", "cifar10", {"root": str(tmp_path), "verify": False}).load()
    (folder / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match=r"cifar-10-python\.tar\.gz"):
        registry.create("dataset", "cifar10", {"root": str(tmp_path), "verify": False}).load()


needs_shared = pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir(), reason="shared datasets not present"
)


@needs_shared
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_shared_idx_datasets_match_their_publishers(registry, name):
    # verify defaults to true: loading checks every file against the published MD5
    splits = registry.create("dataset", name, {"root": str(SHARED_DATA)}).load()
    assert splits.train_inputs.shape == (60000, 1, 28, 28)
    assert splits.test_inputs.shape == (10000, 1, 28, 28)
    assert sorted(np.unique(splits.train_labels.numpy()).tolist()) == list(range(10))
    assert np.bincount(splits.test_labels.numpy()).sum() == 10000


@needs_shared
def test_shared_femnist_sample(registry):
    root = str(SHARED_DATA / "femnist-leaf")
    splits = registry.create("dataset", "femnist", {"root": root}).load()
    assert splits.train_inputs.shape == (779 + 772, 1, 28, 28)
    assert len(splits.test_labels) == 89 + 89
    assert len(np.unique(splits.train_groups)) == 11
    assert int(splits.train_labels.min()) >= 0 and int(splits.train_labels.max()) <= 61
