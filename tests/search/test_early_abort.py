"""Early abort: hopeless trials are recorded PRUNED and the study goes on."""

from __future__ import annotations

from optuna.trial import TrialState

from fedsearch import resolve_study, run_study
from tests._studies import tiny_study, write_study


def study_with_floor(tmp_path, min_accuracy):
    early_abort = {"after_round": 2, "min_accuracy": min_accuracy}
    return write_study(tmp_path, tiny_study(federation={"early_abort": early_abort}))


def test_trials_below_the_floor_are_pruned_and_the_study_continues(tmp_path, registry):
    study = resolve_study(study_with_floor(tmp_path, 0.999), registry)
    trials = run_study(study).get_trials()
    assert [trial.state for trial in trials] == [TrialState.PRUNED] * 3
    for trial in trials:
        assert trial.user_attrs["pruned_at_round"] == 2
        history = trial.user_attrs["val_accuracy_history"]
        assert len(history) == 2 and history[-1] < 0.999


def test_trials_above_the_floor_complete(tmp_path, registry):
    study = resolve_study(study_with_floor(tmp_path, 0.0), registry)
    trials = run_study(study).get_trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 3
