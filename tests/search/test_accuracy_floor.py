"""The accuracy floor keeps useless models off the front; identical trials share one row."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from optuna.trial import TrialState

from fedsearch import resolve_study, run_study
from fedsearch.cli._main import main
from fedsearch.config import ConstraintsConfig
from fedsearch.study import front_summary, open_study, pareto_rows, pareto_trials
from fedsearch.trial import prepare_data
from fedsearch.trial._floor import accuracy_floor
from tests.conftest import TINY_STUDY, write_tiny_study

# One free choice: dense, or 99% of the weights pruned from the first round (a model at chance).
SPACE = """
[slots]
architecture = ["mlp"]
prune = ["none", "magnitude"]

[dimensions]
"architecture.mlp.depth" = { value = 1 }
"architecture.mlp.widths" = { value = 16 }
"prune.magnitude.sparsity" = { value = 0.99 }
"prune.magnitude.start_fraction" = { value = 0.0 }
"""


def test_default_floor_is_the_majority_class_plus_three_standard_errors():
    labels = torch.tensor([0] * 70 + [1] * 20 + [2] * 10)
    floor = accuracy_floor(ConstraintsConfig(), labels)
    assert floor.source == "default" and floor.majority_accuracy == 0.7
    assert floor.value == pytest.approx(0.7 + 3 * math.sqrt(0.7 * 0.3 / 100))
    chosen = accuracy_floor(ConstraintsConfig(min_accuracy=0.5), labels)
    assert (chosen.value, chosen.source) == (0.5, "min_accuracy")


@pytest.fixture(scope="module")
def floored(tmp_path_factory, registry):
    """Three trials: dense, the same dense again, and the 99%-pruned one."""
    teacher = (
        '[teacher]\narchitecture = {{ name = "mlp", params = {{ widths = [32] }} }}\nrounds = 3\n'
    )
    assert teacher in TINY_STUDY
    path = write_tiny_study(
        tmp_path_factory.mktemp("floor"), TINY_STUDY.replace(teacher, ""), SPACE
    )
    study = resolve_study(path, registry)
    optuna_study = open_study(study)
    for prune in ("none", "none", "magnitude"):
        optuna_study.enqueue_trial({"prune": prune})
    return study, run_study(study)


def test_the_study_records_its_default_floor(floored):
    study, optuna_study = floored
    labels = prepare_data(study).val_labels.numpy()
    majority = np.bincount(labels).max() / len(labels)
    expected = majority + 3 * math.sqrt(majority * (1 - majority) / len(labels))
    recorded = optuna_study.user_attrs["accuracy_floor"]
    assert recorded["source"] == "default"
    assert recorded["majority_accuracy"] == pytest.approx(majority)
    assert recorded["value"] == pytest.approx(expected)
    assert 0.1 < recorded["value"] < 0.2  # ten balanced digit classes


def test_a_trial_below_the_floor_is_infeasible_and_off_the_front(floored):
    _, optuna_study = floored
    floor = optuna_study.user_attrs["accuracy_floor"]["value"]
    dense, again, pruned = optuna_study.get_trials(states=(TrialState.COMPLETE,))
    assert pruned.values[0] < floor <= dense.values[0]
    assert pruned.values[1] < dense.values[1]  # smallest model: it would lead an unfloored front
    assert pruned.user_attrs["feasible"] is False
    assert pruned.constraints == {"min_accuracy": pytest.approx(floor - pruned.values[0])}
    assert dense.user_attrs["feasible"] is True
    assert [trial.number for trial in pareto_trials(optuna_study)] == [dense.number, again.number]


def test_trials_with_identical_objectives_share_one_row(floored):
    _, optuna_study = floored
    dense, again, _ = optuna_study.get_trials(states=(TrialState.COMPLETE,))
    assert dense.values == again.values  # same selection, same seed: same objectives
    rows = pareto_rows(optuna_study)
    assert [(row["trial"], row["identical"]) for row in rows] == [(dense.number, [again.number])]
    assert front_summary(optuna_study) | {"accuracy_floor": None} == {
        "complete": 3,
        "infeasible": 1,
        "identical": 1,
        "accuracy_floor": None,
    }


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_pareto_status_and_report_show_the_feasible_front_and_say_what_they_leave_out(
    floored, tmp_path, capsys
):
    study, optuna_study = floored
    storage, name = study.storage_url, study.study_name
    floor = optuna_study.user_attrs["accuracy_floor"]["value"]
    note = f"validation accuracy at least {floor:.4f} (default floor: majority class"
    counts = "Of 3 complete trials: 1 infeasible"
    assert main(["pareto", "--storage", storage, "--study-name", name]) == 0
    out = _flat(capsys.readouterr().out)
    assert note in out and counts in out and "1 repeating the objectives" in out
    assert re.search(r"(^| )0 \+1 \d\.\d{4} ", out)  # trial 0 and one identical trial
    assert main(["status", "--storage", storage, "--study-name", name, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["front"]["infeasible"] == 1 and status["front"]["identical"] == 1
    assert status["best"] == {"val_accuracy": 0, "model_bytes": 0, "comm_bytes": 0}
    assert main(["status", "--storage", storage, "--study-name", name]) == 0
    out = _flat(capsys.readouterr().out)
    assert note in out and re.search(r"(^| )0 \+1 \d\.\d{4} ", out)
    assert main(["report", "--storage", storage, "--study-name", name, "-o", str(tmp_path)]) == 0
    page = _flat((tmp_path / "index.html").read_text())
    assert note in page and counts in page
    assert re.findall(r"<td>(\d+)(?: \+(\d+) identical)?</td>", page)[0] == ("0", "1")
    assert page.count('href="artifacts/trial-') == 1
