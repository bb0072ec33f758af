"""Four workers on one PostgreSQL study share the pruner's rungs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from fedsearch.trial._rungs import RUNG_ATTR_PREFIX
from tests._studies import DROP, tiny_space, tiny_study, write_study

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
FEDSEARCH = str(Path(sys.executable).with_name("fedsearch"))


def test_a_trial_is_pruned_against_rung_points_another_worker_stored(tmp_path, postgres_url):
    pruner = {"name": "pareto_asha", "params": {"reduction_factor": 2, "min_trials": 2}}
    study = tiny_study(
        teacher=DROP,
        federation={"rounds": 4},
        search={"n_trials": 16, "pruner": pruner},
    )
    space = tiny_space(slots={"distill": ["none"]})
    study_file = write_study(tmp_path, study, space)
    command = [FEDSEARCH, "run", str(study_file), "--storage", postgres_url]
    workers = [
        subprocess.Popen(
            [*command, "--study-name", "shared-rungs"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    trials = optuna.load_study(study_name="shared-rungs", storage=postgres_url).get_trials()
    assert len(trials) == 16 and TrialState.FAIL not in {t.state for t in trials}
    worker_of = {trial.number: trial.user_attrs["worker"] for trial in trials}
    assert len(set(worker_of.values())) >= 2, worker_of
    across = []
    for trial in trials:
        if trial.state != TrialState.PRUNED:
            continue
        round_ = trial.user_attrs["pruned_at_round"]
        for peer in trial.user_attrs["rung_peers"]:
            assert f"{RUNG_ATTR_PREFIX}{round_}" in trials[peer].system_attrs
            if worker_of[peer] != worker_of[trial.number]:
                across.append((trial.number, peer))
    # a trial stopped by comparing it with points that another worker's trials wrote
    assert across, [(t.number, t.state, worker_of[t.number]) for t in trials]
