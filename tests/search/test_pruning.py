"""Multi-fidelity pruning in a study: rung points stored, dominated trials PRUNED, any sampler."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from fedsearch import ConfigError, evaluate_selection, resolve_study, run_study
from fedsearch.study import prepare_runtime
from fedsearch.trial._rungs import RUNG_ATTR_PREFIX, RungProbe
from tests._studies import tiny_study, write_study

ASHA = {"name": "pareto_asha", "params": {"reduction_factor": 2, "min_trials": 2}}


def pruned_study(tmp_path, registry, *, sampler="random", n_trials=6):
    search = {"pruner": ASHA, "n_trials": n_trials, "sampler": {"name": sampler}}
    return resolve_study(write_study(tmp_path, tiny_study(search=search)), registry)


def test_dominated_trials_stop_at_a_rung_with_the_reason(tmp_path, registry):
    trials = run_study(pruned_study(tmp_path, registry)).get_trials()
    states = [trial.state for trial in trials]
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states, states
    rungs = (1, 2)  # reduction factor 2 from round 1, below the 3 rounds
    for trial in trials:
        if trial.state != TrialState.PRUNED:
            assert "pruned_at_rung" not in trial.user_attrs
            continue
        rung = trial.user_attrs["pruned_at_rung"]
        assert trial.user_attrs["pruned_at_round"] == rungs[rung]
        assert "non-dominated rank" in trial.user_attrs["pruned_reason"]
        assert len(trial.user_attrs["val_accuracy_history"]) == rungs[rung]
        peers = trial.user_attrs["rung_peers"]
        assert peers and trial.number not in peers
        stored = trial.system_attrs[f"{RUNG_ATTR_PREFIX}{rungs[rung]}"]
        assert stored == trial.user_attrs["rung_point"]
        for peer in peers:  # each peer had stored its point at that rung
            assert f"{RUNG_ATTR_PREFIX}{rungs[rung]}" in trials[peer].system_attrs


def test_rung_points_measure_what_the_trial_has_at_that_round(tmp_path, registry):
    trials = run_study(pruned_study(tmp_path, registry)).get_trials()
    checked = 0
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        history = trial.user_attrs["history"]
        for round_ in (1, 2):
            stored = trial.system_attrs[f"{RUNG_ATTR_PREFIX}{round_}"]
            so_far = history[:round_]
            traffic = sum(
                r["downlink_bytes"] + r["uplink_bytes"] + r["one_time_bytes"] for r in so_far
            )
            assert stored["comm_bytes"] == traffic + trial.user_attrs["teacher_training_bytes"]
            assert stored["val_accuracy"] == history[round_ - 1]["val_accuracy"]
            if trial.params.get("prune") == "none":  # same tensors; LZMA sizes differ a little
                assert 0.8 < stored["model_bytes"] / trial.values[1] < 1.25
        checked += 1
    assert checked


@pytest.mark.parametrize("sampler", ["nsga2", "nsga3", "tpe", "gp", "evolution", "rl_controller"])
def test_every_sampler_runs_with_the_pruner(tmp_path, registry, sampler):
    if sampler not in registry.names("sampler"):
        pytest.fail(f"sampler {sampler!r} is not registered")
    trials = run_study(pruned_study(tmp_path, registry, sampler=sampler, n_trials=7)).get_trials()
    states = [trial.state for trial in trials]
    assert len(states) == 7 and TrialState.FAIL not in states
    assert TrialState.PRUNED in states


def test_an_unknown_pruner_is_a_config_error_naming_the_field(tmp_path, registry):
    path = write_study(tmp_path, tiny_study(search={"pruner": {"name": "pareto_ash"}}))
    with pytest.raises(ConfigError, match="did you mean 'pareto_asha'") as error:
        resolve_study(path, registry)
    assert "search.pruner" in str(error.value)


def test_a_bad_pruner_param_is_a_config_error(tmp_path, registry):
    pruner = {"name": "pareto_asha", "params": {"reduction_factor": 1}}
    path = write_study(tmp_path, tiny_study(search={"pruner": pruner}))
    with pytest.raises(ConfigError, match="reduction_factor"):
        resolve_study(path, registry)


def test_the_probe_measures_the_artifact_the_trial_would_ship(tmp_path, registry):
    study = resolve_study(write_study(tmp_path, tiny_study()), registry)
    runtime = prepare_runtime(study)
    optuna_study = optuna.create_study(directions=study.directions)
    optuna_study.enqueue_trial(
        {"prune": "magnitude", "quantize": "uniform", "quantize.uniform.bits": 4, "distill": "none"}
    )
    trial = optuna_study.ask()
    selection = study.space.suggest(trial)
    probe = RungProbe()
    sizes = []
    outcome = evaluate_selection(
        runtime,
        selection,
        on_round=lambda r: sizes.append(probe.model_bytes(r.round - 1)),
        probe=probe,
    )
    assert sizes[-1] == outcome.model_bytes  # the last round's weights are the shipped ones
    assert len(set(sizes)) > 1  # pruning ramps up: earlier artifacts differ


def test_measuring_rungs_leaves_the_trial_unchanged(tmp_path, registry):
    study = resolve_study(write_study(tmp_path, tiny_study()), registry)
    runtime = prepare_runtime(study)
    optuna_study = optuna.create_study(directions=study.directions)
    optuna_study.enqueue_trial(
        {"prune": "magnitude", "quantize": "uniform", "quantize.uniform.bits": 4}
        | {"distill": "soft_target"}
    )
    selection = study.space.suggest(optuna_study.ask())
    outcomes = []
    for measure in (False, True):
        probe = RungProbe()
        on_round = (lambda r, p=probe: p.model_bytes(r.round - 1)) if measure else None
        outcome = evaluate_selection(runtime, selection, on_round=on_round, probe=probe)
        outcomes.append((outcome.val_accuracy, outcome.model_bytes, outcome.comm_bytes))
    assert outcomes[0] == outcomes[1]
