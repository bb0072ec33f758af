"""CIFAR-10 batches are untrusted pickles: only arrays and plain data are rebuilt."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from fedsearch_builtins._safe_pickle import load_restricted

from fedsearch import ConfigError
from tests._console import fedsearch
from tests._studies import tiny_study, write_study
from tests.builtins.test_datasets import checksums, write_cifar

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


class CreatesFile:
    """Unpickling this calls ``open(path, "w")``: a file appears if the payload runs."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def crafted_cifar(tmp_path: Path) -> tuple[Path, Path]:
    """A CIFAR-10 folder whose first batch carries the payload; returns (root, marker)."""
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder, np.random.default_rng(3))
    marker = tmp_path / "payload-ran"
    batch = {
        b"data": np.zeros((4, 3072), dtype=np.uint8),
        b"labels": [0, 1, 2, 3],
        b"extra": CreatesFile(marker),
    }
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch))
    return tmp_path, marker


@pytest.mark.parametrize("checks", ["verify-false", "pinned-checksums"])
def test_crafted_batch_is_refused_and_its_payload_never_runs(registry, tmp_path, checks):
    root, marker = crafted_cifar(tmp_path)
    params = {"root": str(root)}
    if checks == "verify-false":
        params["verify"] = False
    else:
        params["checksums"] = checksums(root / "cifar-10-batches-py", BATCHES)
    with pytest.raises(ConfigError, match=r"data_batch_1 is not a CIFAR-10 python batch.*open"):
        registry.create("dataset", "cifar10", params).load()
    assert not marker.exists()


@pytest.mark.e2e
def test_run_with_a_crafted_batch_fails_cleanly_without_running_it(tmp_path):
    root, marker = crafted_cifar(tmp_path / "data")
    dataset = {"name": "cifar10", "params": {"root": str(root), "verify": False}}
    result = fedsearch("run", str(write_study(tmp_path, tiny_study(dataset=dataset))))
    assert result.returncode == 2, result.stderr
    assert "not a CIFAR-10 python batch" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def test_python2_style_batches_still_load():
    # The published batches were pickled by Python 2 with numpy 1 (module numpy.core.multiarray).
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    data = pickle.dumps({b"data": array, b"labels": [3, 4]}, protocol=2)
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in data
    batch = load_restricted(io.BytesIO(data), encoding="bytes")
    np.testing.assert_array_equal(batch[b"data"], array)
    assert batch[b"labels"] == [3, 4]


def test_arrays_of_python_objects_are_refused():
    data = pickle.dumps(np.array([1, "a"], dtype=object), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="Python objects"):
        load_restricted(io.BytesIO(data))


def test_bytes_at_protocol_2_load_and_other_codecs_are_refused():
    data = pickle.dumps({b"key": b"value"}, protocol=2)
    assert b"_codecs\nencode" in data
    assert load_restricted(io.BytesIO(data)) == {b"key": b"value"}
    crafted = data.replace(b"latin1", b"rot_13")
    with pytest.raises(pickle.UnpicklingError, match="rot_13"):
        load_restricted(io.BytesIO(crafted))
