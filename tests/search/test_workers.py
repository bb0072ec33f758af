"""Workers' building blocks: storage locks, the shared budget, per-trial seeds, the teacher."""

from __future__ import annotations

import threading

import optuna
import pytest
from optuna.trial import TrialState

from fedsearch import resolve_study
from fedsearch.study import load_or_train_teacher
from fedsearch.study._storage import StorageLock, StudyBudget, TrialSeededSampler
from fedsearch.study._teacher import cached_teacher, teacher_key
from fedsearch.trial import StudyRuntime, prepare_data
from tests.conftest import write_tiny_study


def _lock_is_exclusive(url: str) -> None:
    holder = StorageLock(url, "exclusive-test")
    holder.acquire()
    acquired = threading.Event()

    def contender() -> None:
        with StorageLock(url, "exclusive-test"):
            acquired.set()

    thread = threading.Thread(target=contender, daemon=True)
    thread.start()
    assert not acquired.wait(0.5), "a second holder got the lock while the first held it"
    other = StorageLock(url, "another-name")  # other names are independent
    other.acquire()
    other.release()
    holder.release()
    holder.release()  # releasing twice is harmless
    assert acquired.wait(30), "the lock was never handed over"
    thread.join(30)


def test_sqlite_lock_is_exclusive(tmp_path):
    _lock_is_exclusive(f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_postgres_advisory_lock_is_exclusive(postgres_url):
    _lock_is_exclusive(postgres_url)


def _study_with(states: list[TrialState]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for state in states:
        values = [0.5, 1.0, 1.0] if state == TrialState.COMPLETE else None
        study.add_trial(optuna.create_trial(state=state, values=values))
    return study


@pytest.mark.parametrize(
    ("states", "decision"),
    [
        ([], "run"),
        ([TrialState.COMPLETE] * 2, "run"),
        ([TrialState.COMPLETE] * 3, "done"),
        ([TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE], "done"),
        ([TrialState.COMPLETE] * 2 + [TrialState.RUNNING], "wait"),
        ([TrialState.COMPLETE, TrialState.RUNNING, TrialState.RUNNING], "wait"),
        ([TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING], "run"),
        ([TrialState.COMPLETE, TrialState.RUNNING, TrialState.RUNNING, TrialState.WAITING], "run"),
    ],
)
def test_budget_counts_every_workers_trials(states, decision):
    study = _study_with(states)
    assert StudyBudget(3).decide(study).value == decision


def test_trial_seeded_sampler_depends_on_the_trial_number_not_the_process(tiny_study, registry):
    def proposals(numbers_to_skip: int) -> list[float]:
        """One 'worker': its sampler is fresh; it runs after ``numbers_to_skip`` trials."""
        sampler = TrialSeededSampler(lambda seed: optuna.samplers.RandomSampler(seed=seed), 7)
        study = optuna.create_study(sampler=sampler)
        for _ in range(numbers_to_skip):
            study.add_trial(optuna.create_trial(state=TrialState.FAIL))
        values = []
        for _ in range(2):
            trial = study.ask()
            values.append(trial.suggest_float("x", 0.0, 1.0))
            study.tell(trial, 0.0)
        return values

    first, second = proposals(0), proposals(0)
    assert first == second  # same trial numbers, same proposals
    assert first[0] != first[1]
    shifted = proposals(1)  # trial numbers 1 and 2
    assert shifted[0] == first[1]


def test_teacher_is_trained_once_when_two_workers_start_together(tmp_path, registry, postgres_url):
    study = resolve_study(
        write_tiny_study(tmp_path), registry, storage=postgres_url, study_name="teacher-once"
    )
    runtime = StudyRuntime(study=study, data=prepare_data(study), teacher=None)
    assert cached_teacher(postgres_url, teacher_key(study)) is None
    rounds: list[int] = []
    teachers = []

    def worker() -> None:
        teachers.append(
            load_or_train_teacher(
                study, runtime.federated_run(), on_round=lambda record: rounds.append(record.round)
            )
        )

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert rounds == [1, 2, 3]  # one training of the teacher's 3 rounds, not two
    assert len(teachers) == 2
    assert teachers[0].val_accuracy == teachers[1].val_accuracy
    cached = cached_teacher(postgres_url, teacher_key(study))
    assert len(cached.artifact) == teachers[0].artifact_bytes
    assert cached.training_bytes == teachers[0].training_bytes == teachers[1].training_bytes > 0
