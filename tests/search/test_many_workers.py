"""Four worker processes share one PostgreSQL study and its budget."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from fedsearch import resolve_study
from fedsearch.study._teacher import cached_teacher, teacher_key
from tests.conftest import TINY_STUDY, write_tiny_study

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
FEDSEARCH = str(Path(sys.executable).with_name("fedsearch"))


def test_four_workers_finish_exactly_the_budget_and_train_the_teacher_once(
    tmp_path, postgres_url, registry
):
    text = TINY_STUDY.replace("n_trials = 3", "n_trials = 40")
    text = text.replace("rounds = 3", "rounds = 1")  # one round per trial and for the teacher
    study_file = write_tiny_study(tmp_path, study=text)
    command = [FEDSEARCH, "run", str(study_file), "--storage", postgres_url]
    workers = [
        subprocess.Popen(
            [*command, "--study-name", "four-workers"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    study = optuna.load_study(study_name="four-workers", storage=postgres_url)
    trials = study.get_trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 40
    assert sorted(trial.number for trial in trials) == list(range(40))
    by_worker = Counter(trial.user_attrs["worker"] for trial in trials)
    pids = {f":{worker.pid}" for worker in workers}
    assert all(name[name.rindex(":") :] in pids for name in by_worker)
    assert len(by_worker) >= 2, by_worker  # the work was shared
    # the teacher was trained by exactly one worker and loaded by the three others
    origins = Counter("trained" if "teacher (trained)" in out else "cached" for out, _ in outputs)
    assert origins == {"trained": 1, "cached": 3}
    key = teacher_key(resolve_study(study_file, registry))
    cached = cached_teacher(postgres_url, key)
    assert len(cached.artifact) == study.user_attrs["teacher"]["artifact_bytes"]
    assert cached.training_bytes == study.user_attrs["teacher"]["training_bytes"] > 0
