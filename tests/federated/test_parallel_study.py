"""A whole study with clients trained in worker processes: the same trials as in-process."""

from __future__ import annotations

import optuna
import pytest

from fedsearch.cli._main import main
from fedsearch.federated import _training
from tests.conftest import TINY_STUDY, write_tiny_study


def trials_of(folder, execution):
    text = TINY_STUDY.replace(
        "learning_rate = 0.3", f'learning_rate = 0.3\nexecution = "{execution}"\nclient_workers = 2'
    ).replace("n_trials = 3", "n_trials = 2")
    study = write_tiny_study(folder, text)
    assert main(["run", str(study)]) == 0
    storage = f"sqlite:///{folder / 'runs' / 'fedsearch.db'}"
    return optuna.load_study(study_name="tiny", storage=storage).trials


def test_a_parallel_study_finds_what_the_sequential_one_finds(tmp_path, capsys, monkeypatch):
    sequential = trials_of(tmp_path / "sequential", "sequential")
    rounds_in_workers = []

    def counted(*args, **kwargs):
        rounds_in_workers.append(1)
        return train_parallel(*args, **kwargs)

    train_parallel = _training.train_parallel
    monkeypatch.setattr(_training, "train_parallel", counted)
    parallel = trials_of(tmp_path / "parallel", "parallel")
    assert len(rounds_in_workers) >= 3 * 3  # the teacher's 3 rounds and each trial's 3
    assert [t.params for t in parallel] == [t.params for t in sequential]
    for ours, theirs in zip(parallel, sequential, strict=True):
        accuracy, model_bytes, comm_bytes = ours.values
        assert accuracy == pytest.approx(theirs.values[0], abs=1e-6)
        assert (model_bytes, comm_bytes) == tuple(theirs.values[1:])  # same bytes, same traffic
    capsys.readouterr()
