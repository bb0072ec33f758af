"""The study library (``studies/*.toml``): every file is valid, says what it measured, and runs.

Each study resolves against the installed plugins and loads its data (the
shared datasets; for CIFAR-10, which is not shared, small stand-in batches of
the real format). The end-to-end test runs every study through the console
script with the test budget (one round, one trial).
"""

from __future__ import annotations

import re
import shutil
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from fedsearch import resolve_study
from fedsearch.trial import prepare_data
from tests._console import fedsearch
from tests._studies import merged, write_toml
from tests.builtins.test_datasets import write_cifar
from tests.conftest import REPO, SHARED_DATA

STUDIES = sorted((REPO / "studies").glob("*.toml"))
DATASET_LIBRARY = {
    "mnist_mlp",
    "mnist_cnn",
    "fashion_mnist_dirichlet",
    "femnist_writers",
    "cifar10",
}
"""The library of studies per dataset; the quickstart and its variants (``quickstart_*``,
``pretrained_lenet``) each have tests of their own."""
LIBRARY = [path for path in STUDIES if path.stem in DATASET_LIBRARY]
BUDGET = {"federation": {"rounds": 1}, "teacher": {"rounds": 1}, "search": {"n_trials": 1}}
DATA_FOLDERS = {  # what each dataset reads under $FEDSEARCH_DATA_DIR
    "mnist": "mnist",
    "fashion_mnist": "fashion-mnist",
    "femnist": "femnist-leaf",
}


def study_dataset(path: Path) -> str:
    return tomllib.loads(path.read_text()).get("dataset", {}).get("name", "digits")


def missing_data(path: Path) -> str | None:
    """Why the study's data is not here, or None (CIFAR-10 always has its stand-in)."""
    subdir = DATA_FOLDERS.get(study_dataset(path))
    if subdir is None or (SHARED_DATA / subdir).is_dir():
        return None
    return f"the shared {subdir} data is not at {SHARED_DATA / subdir}"


def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder: the shared datasets, plus CIFAR-10 stand-in batches (random pixels)."""
    folder = tmp_path_factory.mktemp("data")
    for subdir in DATA_FOLDERS.values():
        if (SHARED_DATA / subdir).is_dir():
            (folder / subdir).symlink_to(SHARED_DATA / subdir)
    write_cifar(folder / "cifar10" / "cifar-10-batches-py", np.random.default_rng(0), 60)
    return folder


def stand_in(path: Path, folder: Path) -> Path:
    """The study file as the tests run it: the stand-in CIFAR-10 has no published MD5."""
    study = tomllib.loads(path.read_text())
    if study_dataset(path) == "cifar10":
        study = merged(study, {"dataset": {"params": {"verify": False}}})
    target = folder / "studies" / path.name
    write_toml(target, study)
    return target


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """A copy of studies/ and search_spaces/ beside a data folder."""
    root = tmp_path_factory.mktemp("library")
    shutil.copytree(REPO / "search_spaces", root / "search_spaces")
    for path in STUDIES:
        stand_in(path, root)
    (root / "data").symlink_to(data_dir(tmp_path_factory))
    return root


def test_the_library_has_every_dataset_the_docs_promise():
    datasets = {study_dataset(path) for path in LIBRARY}
    assert datasets == {"mnist", "fashion_mnist", "femnist", "cifar10"}
    students = {
        path.stem: tomllib.loads(path.read_text())["search"]["slots"]["architecture"]
        for path in LIBRARY
    }
    assert ["mlp"] in students.values() and ["cnn"] in students.values()  # MNIST MLP and CNN
    partitions = {
        study_dataset(path): tomllib.loads(path.read_text())["federation"]["partition"]["name"]
        for path in LIBRARY
    }
    assert partitions["fashion_mnist"] == "dirichlet" and partitions["femnist"] == "natural"
    listed = (REPO / "docs" / "studies.md").read_text()
    assert all(f"`studies/{path.name}`" in listed for path in STUDIES)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda path: path.stem)
def test_header_states_the_measured_time_and_front(path):
    lines = [line for line in path.read_text().splitlines() if line.startswith("#")]
    header = " ".join(" ".join(line.lstrip("#").split()) for line in lines)
    if "Not measured" in header:  # no copy of the data on the machine that measured
        assert re.search(r"Not measured\b.*\bdata\b", header), "say why it was not measured"
        return
    assert re.search(r"Measured\b.*? \d+ s of CPU time", header), "the measured run time"
    assert "shared" in header, "times measured on a shared machine are labelled so"
    assert re.search(r"\bFront\b.*?\d+ B\b", header), "the measured front, with model sizes"
    assert f"fedsearch run studies/{path.name}" in header


@pytest.mark.slow
@pytest.mark.parametrize(  # pretrained_lenet needs a file: tests/search/test_pretrained_study.py
    "path", [p for p in STUDIES if p.stem != "pretrained_lenet"], ids=lambda path: path.stem
)
def test_study_resolves_and_its_data_loads(path, library, monkeypatch, registry):
    if reason := missing_data(path):
        pytest.skip(reason)
    monkeypatch.chdir(library)  # the studies' data root ("data") is relative to it
    study = resolve_study(str(Path("studies") / path.name), registry)
    data = prepare_data(study)
    assert data.num_classes == (62 if study_dataset(path) == "femnist" else 10)
    assert len(data.client_indices) == study.config.federation.num_clients
    assert min(len(indices) for indices in data.client_indices) > 0


@pytest.mark.e2e
@pytest.mark.slow
def test_every_study_runs_with_a_tiny_budget(library, tmp_path):
    runs = {}
    runnable = [path for path in LIBRARY if missing_data(path) is None]  # quickstart: its own tests
    assert runnable, "no study has its data"
    for path in runnable:
        study = merged(tomllib.loads((library / "studies" / path.name).read_text()), BUDGET)
        write_toml(tmp_path / "studies" / path.name, study)
    shutil.copytree(REPO / "search_spaces", tmp_path / "search_spaces")
    (tmp_path / "data").symlink_to((library / "data").resolve())

    def run(path: Path) -> None:
        storage = f"sqlite:///runs/{path.stem}.db"
        runs[path.stem] = (
            fedsearch("run", f"studies/{path.name}", "--storage", storage, cwd=tmp_path),
            storage,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(run, runnable))
    for path in runnable:
        result, storage = runs[path.stem]
        assert result.returncode == 0, f"{path.name}: {result.stderr[-3000:]}"
        name = tomllib.loads(path.read_text())["name"]
        storage = storage.replace("runs/", f"{tmp_path}/runs/")
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        assert [trial.state for trial in trials] == [TrialState.COMPLETE], path.name
