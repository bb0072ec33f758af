"""Constrained studies keep infeasible trials off the front; extra objectives add metrics."""

from __future__ import annotations

import json

import optuna
import pytest
import torch
from fedsearch_builtins.objectives import count_flops
from optuna.artifacts import FileSystemArtifactStore, download_artifact

from fedsearch import (
    OBJECTIVE_NAMES,
    ConfigError,
    PluginError,
    load_model,
    resolve_study,
    run_study,
)
from fedsearch.cli._main import main
from fedsearch.study import infeasible_trials, pareto_rows, pareto_trials
from tests._studies import tiny_study, write_study

MAX_MODEL_BYTES = 2500  # tiny float32 MLPs (>= 4.7 KB) break it; quantized ones meet it


def dominates(a: list[float], b: list[float]) -> bool:
    better = [-a[0], *a[1:]], [-b[0], *b[1:]]
    return all(x <= y for x, y in zip(*better, strict=True)) and better[0] != better[1]


@pytest.fixture(scope="module")
def constrained(tmp_path_factory, registry):
    constraints = {"max_model_bytes": MAX_MODEL_BYTES, "min_accuracy": 0.2}
    study = tiny_study(search={"n_trials": 8, "constraints": constraints})
    path = write_study(tmp_path_factory.mktemp("constrained"), study)
    return path, run_study(resolve_study(path, registry))


def test_every_trial_on_the_reported_front_meets_the_constraints(constrained):
    _, study = constrained
    front = pareto_trials(study)
    assert front
    for trial in front:
        assert trial.values[1] <= MAX_MODEL_BYTES and trial.values[0] >= 0.2
        assert trial.user_attrs["feasible"] is True
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    for trial in complete:
        meets = trial.values[1] <= MAX_MODEL_BYTES and trial.values[0] >= 0.2
        assert trial.user_attrs["feasible"] is meets
        assert set(trial.constraints) == {"max_model_bytes", "min_accuracy"}
    # the constraint matters: some infeasible trial would be on an unconstrained front
    excluded = infeasible_trials(study)
    assert any(
        not any(dominates(other.values, trial.values) for other in complete) for trial in excluded
    )


def test_pareto_command_reports_only_feasible_trials(constrained, capsys):
    path, study = constrained
    storage = f"sqlite:///{path.parent / 'runs' / 'fedsearch.db'}"
    assert main(["pareto", "--storage", storage, "--study-name", "tiny", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    shown = [number for row in rows for number in (row["trial"], *row["identical"])]
    assert sorted(shown) == sorted(trial.number for trial in pareto_trials(study))
    assert all(row["model_bytes"] <= MAX_MODEL_BYTES for row in rows)
    assert main(["pareto", "--storage", storage, "--study-name", "tiny"]) == 0
    infeasible = len(infeasible_trials(study))
    assert infeasible > 0
    assert f"{infeasible} infeasible (below the floor" in " ".join(capsys.readouterr().out.split())


def test_enabled_objective_adds_a_named_objective(tmp_path, registry):
    study = tiny_study(search={"n_trials": 2, "objectives": [{"name": "flops"}]})
    resolved = resolve_study(write_study(tmp_path, study), registry)
    study = run_study(resolved)
    assert study.metric_names == [*OBJECTIVE_NAMES, "flops"]
    for trial in study.trials:
        target = tmp_path / f"{trial.number}.fsz"
        download_artifact(
            artifact_store=FileSystemArtifactStore(study.user_attrs["artifact_dir"]),
            file_path=str(target),
            artifact_id=trial.user_attrs["artifact_id"],
        )
        model = load_model(target.read_bytes(), registry)
        assert trial.values[3] == count_flops(model, (1, 8, 8)) > 0
    assert all("flops" in row for row in pareto_rows(study))


def test_flops_follow_the_layers(registry):
    model = registry.create("architecture", "mlp", {"widths": [300, 100]}).build((1, 28, 28), 10)
    assert count_flops(model, (1, 28, 28)) == 2 * (784 * 300 + 300 * 100 + 100 * 10)
    conv = registry.create("architecture", "cnn", {"channels": [6], "hidden": 10}).build(
        (1, 8, 8), 10
    )
    # one valid 5x5 conv on 8x8 (4x4 out, 6 channels), pool to 2x2, dense 24->10->10
    assert count_flops(conv, (1, 8, 8)) == 2 * (4 * 4 * 6 * 25 + 24 * 10 + 10 * 10)


def test_latency_is_a_median_in_milliseconds(registry):
    latency = registry.create("objective", "latency", {"runs": 5, "warmup": 1})
    model = registry.create("architecture", "mlp", {"widths": [16]}).build((1, 8, 8), 10)
    threads = torch.get_num_threads()
    value = latency.measure(model.eval(), (1, 8, 8))
    assert isinstance(value, float) and value > 0
    assert torch.get_num_threads() == threads


def test_measure_trial_is_the_one_trial_level_contract(registry):
    model = registry.create("architecture", "mlp", {"widths": [16]}).build((1, 8, 8), 10).eval()
    attributes = {"epsilon": 2.5, "round_time_s": 41.25}
    flops = registry.create("objective", "flops", {})
    assert flops.measure_trial(b"", model, (1, 8, 8), attributes) == count_flops(model, (1, 8, 8))
    for name, attribute in (("epsilon", "epsilon"), ("round_time", "round_time_s")):
        objective = registry.create("objective", name, {})
        value = objective.measure_trial(b"", model, (1, 8, 8), attributes)
        assert value == attributes[attribute]
        with pytest.raises(PluginError, match=f"{name} is the run's"):
            objective.measure(model, (1, 8, 8))
    with pytest.raises(PluginError, match=r"round_time.*\[tiers\]"):
        registry.create("objective", "round_time", {}).measure_trial(b"", model, (1, 8, 8), {})


def test_unknown_objective_suggests_the_closest(tmp_path, registry):
    study = tiny_study(search={"objectives": [{"name": "flop"}]})
    with pytest.raises(ConfigError, match=r"search\.objectives\[0\].*did you mean 'flops'"):
        resolve_study(write_study(tmp_path, study), registry)


def test_bad_constraint_is_a_config_error(tmp_path, registry):
    study = tiny_study(search={"constraints": {"max_model_byte": 10}})
    with pytest.raises(ConfigError, match="max_model_byte"):
        resolve_study(write_study(tmp_path, study), registry)
