"""Faults: failing plugins, diverging training, Ctrl-C and killed workers lose nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from fedsearch import (
    CompressionContext,
    Compressor,
    Registrar,
    TrialFailuresError,
    get_plugin_manager,
    get_registry,
    hookimpl,
    resolve_study,
    run_study,
)
from fedsearch.study._storage import open_storage
from tests.conftest import TINY_SPACE, TINY_STUDY, write_tiny_study

pytestmark = pytest.mark.e2e
FEDSEARCH = str(Path(sys.executable).with_name("fedsearch"))
FAST_HEARTBEATS = """
[workers]
heartbeat_interval = 1
grace_period = 2
max_retry = 1
"""


class Exploding(Compressor):
    """A broken third-party pruner: its setup always raises."""

    name = "exploding"
    stage = "prune"

    def setup(self, context: CompressionContext) -> None:
        raise RuntimeError("exploding plugin: setup failed on purpose")


class ExplodingPlugin:
    @hookimpl
    def fedsearch_register_components(self, register: Registrar) -> None:
        register.compressor(Exploding)


def test_a_failing_plugin_fails_its_trials_and_the_study_goes_on(tmp_path):
    registry = get_registry(get_plugin_manager(extra_plugins=[ExplodingPlugin()]))
    space = TINY_SPACE.replace('prune = ["none", "magnitude"]', 'prune = ["none", "exploding"]')
    study = resolve_study(write_tiny_study(tmp_path, space=space), registry)
    optuna_study = run_study(study)
    complete = optuna_study.get_trials(states=(TrialState.COMPLETE,))
    failed = optuna_study.get_trials(states=(TrialState.FAIL,))
    assert len(complete) == study.config.search.n_trials
    assert failed, "the seeded sampler chose the exploding pruner at least once"
    for trial in failed:
        assert trial.user_attrs["selection"]["prune"]["name"] == "exploding"
        assert trial.user_attrs["error_type"] == "RuntimeError"
        assert trial.user_attrs["error"] == "exploding plugin: setup failed on purpose"
        assert "in setup" in trial.user_attrs["traceback"]
        assert trial.user_attrs["worker"].endswith(f":{os.getpid()}")
    for trial in complete:
        assert trial.user_attrs["selection"].get("prune", {"name": "none"})["name"] != "exploding"


def test_a_diverging_loss_fails_the_trial_and_a_streak_of_failures_stops_the_worker(
    tmp_path, registry
):
    text = TINY_STUDY.replace("learning_rate = 0.3", "learning_rate = 1e30")
    text = text.replace("rounds = 3\n\n[search]", "rounds = 3\nlearning_rate = 0.3\n\n[search]")
    text += "\n[workers]\nmax_consecutive_failures = 2\n"
    study = resolve_study(write_tiny_study(tmp_path, study=text), registry)
    with pytest.raises(TrialFailuresError, match="2 trials in a row failed") as raised:
        run_study(study)
    assert "DivergenceError: training loss is" in str(raised.value)
    trials = optuna.load_study(study_name="tiny", storage=study.storage_url).trials
    assert [trial.state for trial in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert {trial.user_attrs["error_type"] for trial in trials} == {"DivergenceError"}
    assert "lower the learning rate" in trials[0].user_attrs["error"]


def _worker(study_file: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [FEDSEARCH, "run", str(study_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    # Opened as fedsearch opens it: Optuna's tables are created under the storage lock, so this
    # poll cannot race the starting worker's schema creation ("table ... already exists").
    return optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials()


def _stop_during_a_trial(
    worker: subprocess.Popen, storage: str, name: str, *, after_complete: int = 1
) -> optuna.trial.FrozenTrial:
    """SIGSTOP ``worker`` while it runs a trial, after ``after_complete`` trials finished."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert worker.poll() is None, worker.communicate()
        try:
            trials = _trials(storage, name)
        except (KeyError, sqlalchemy.exc.OperationalError):  # no study yet
            time.sleep(0.05)
            continue
        complete = sum(trial.state == TrialState.COMPLETE for trial in trials)
        if complete >= after_complete and _running_trial(trials, worker.pid) is not None:
            os.kill(worker.pid, signal.SIGSTOP)
            running = _running_trial(_trials(storage, name), worker.pid)
            if running is not None:
                return running
            os.kill(worker.pid, signal.SIGCONT)  # it finished the trial in between; try again
        time.sleep(0.05)
    raise AssertionError("the worker never ran a trial")


def _running_trial(trials: list[optuna.trial.FrozenTrial], pid: int) -> optuna.trial.FrozenTrial:
    running = [
        trial
        for trial in trials
        if trial.state == TrialState.RUNNING
        and str(trial.user_attrs.get("worker", "")).endswith(f":{pid}")
        and "summary" in trial.user_attrs  # its params are all sampled: it is training
    ]
    return running[0] if running else None


def _snapshot(trials: list[optuna.trial.FrozenTrial]) -> dict[int, tuple]:
    return {
        trial.number: (trial.values, trial.params, trial.user_attrs["artifact_id"])
        for trial in trials
        if trial.state == TrialState.COMPLETE
    }


def _slow_tiny_study(folder: Path, n_trials: int) -> Path:
    """The tiny study with 25 rounds per trial, so that a trial can be caught running."""
    text = TINY_STUDY.replace("rounds = 3\nfraction", "rounds = 25\nfraction")
    text = text.replace("n_trials = 3", f"n_trials = {n_trials}")
    return write_tiny_study(folder, study=text + FAST_HEARTBEATS)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_fails_the_running_trial_and_keeps_the_finished_ones(tmp_path, stop):
    study_file = _slow_tiny_study(tmp_path, n_trials=20)
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    worker = _worker(study_file)
    running = _stop_during_a_trial(worker, storage, "tiny", after_complete=1)
    before = _snapshot(_trials(storage, "tiny"))
    os.kill(worker.pid, stop)
    os.kill(worker.pid, signal.SIGCONT)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 130, stderr
    how = "Ctrl-C" if stop == signal.SIGINT else "SIGTERM"
    assert stderr.splitlines() == [
        f"fedsearch: interrupted ({how}); any running trial is marked FAIL, finished trials "
        "are kept (run again to continue)"
    ]
    after = _trials(storage, "tiny")
    interrupted = after[running.number]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["error_type"] == "KeyboardInterrupt"
    reason = "KeyboardInterrupt" if stop == signal.SIGINT else "interrupted (SIGTERM)"
    assert interrupted.user_attrs["error"] == reason
    assert "KeyboardInterrupt" in interrupted.user_attrs["traceback"]
    assert not [trial for trial in after if trial.state == TrialState.RUNNING]
    assert _snapshot(after) == before
    assert len(before) >= 1


def test_a_killed_workers_trial_fails_after_the_grace_period_and_is_retried(tmp_path, postgres_url):
    study_file = _slow_tiny_study(tmp_path, n_trials=4)
    first = _worker(study_file, "--storage", postgres_url, "--study-name", "killed")
    running = _stop_during_a_trial(first, postgres_url, "killed")
    before = _snapshot(_trials(postgres_url, "killed"))
    first.kill()
    first.communicate(timeout=30)
    second = _worker(study_file, "--storage", postgres_url, "--study-name", "killed")
    _, stderr = second.communicate(timeout=240)
    assert second.returncode == 0, stderr
    trials = _trials(postgres_url, "killed")
    killed = trials[running.number]
    assert killed.state == TrialState.FAIL
    assert "error_type" not in killed.user_attrs  # it died; nobody could record an error
    (retry,) = [trial for trial in trials if trial.user_attrs.get("retry_of") == killed.number]
    assert retry.state == TrialState.COMPLETE
    assert retry.params == killed.params
    assert retry.user_attrs["worker"].endswith(f":{second.pid}")
    complete = _snapshot(trials)
    assert len(complete) == 4
    assert {number: complete[number] for number in before} == before
