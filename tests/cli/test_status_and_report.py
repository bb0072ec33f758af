"""``fedsearch status`` and ``fedsearch report`` on a finished study."""

from __future__ import annotations

import json
import re

import pytest
from optuna.trial import TrialState

from fedsearch import resolve_study, run_study
from fedsearch.cli._main import main
from fedsearch.study import pareto_rows, pareto_trials
from fedsearch.study._storage import worker_id
from tests.conftest import write_tiny_study


@pytest.fixture(scope="module")
def finished(tmp_path_factory, registry):
    folder = tmp_path_factory.mktemp("status")
    study = resolve_study(write_tiny_study(folder), registry)
    return study.storage_url, run_study(study)


def test_status_counts_trials_by_state_and_worker(finished, capsys):
    storage, study = finished
    assert main(["status", "--storage", storage, "--study-name", "tiny", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["budget"] == 3
    assert status["states"]["COMPLETE"] == 3
    assert sum(status["states"].values()) == len(study.trials)
    assert list(status["workers"]) == [worker_id()]
    assert status["workers"][worker_id()]["states"] == {"COMPLETE": 3}
    assert status["pareto"] == pareto_rows(study)
    best_accuracy = max(pareto_trials(study), key=lambda trial: trial.values[0])
    assert status["best"]["val_accuracy"] == best_accuracy.number
    assert main(["status", "--storage", storage, "--study-name", "tiny"]) == 0
    table = capsys.readouterr().out
    assert "trials by worker" in table and worker_id() in table
    assert "best trade-offs so far" in table


def test_report_is_self_contained_with_plots_table_and_artifacts(finished, tmp_path, capsys):
    storage, study = finished
    out = tmp_path / "report"
    assert main(["report", "--storage", storage, "--study-name", "tiny", "-o", str(out)]) == 0
    page = (out / "index.html").read_text()
    pngs = sorted(path.name for path in out.glob("*.png"))
    assert pngs == [
        "pareto-model_bytes-comm_bytes.png",
        "pareto-val_accuracy-comm_bytes.png",
        "pareto-val_accuracy-model_bytes.png",
    ]
    for name in pngs:
        assert (out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    front = pareto_trials(study)
    links = re.findall(r'<a href="(artifacts/trial-(\d+)\.fsz)">', page)
    assert [int(number) for _, number in links] == [trial.number for trial in front]
    for (link, _), trial in zip(links, front, strict=True):
        assert (out / link).stat().st_size == trial.values[1]  # the artifact is model_bytes long
        assert f"{trial.user_attrs['test_accuracy']:.4f}" in page
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert f"COMPLETE {len(complete)}" in page


@pytest.mark.parametrize("command", ["status", "report"])
def test_unknown_study_is_one_line_and_exit_2(finished, command, tmp_path, capsys):
    storage, _ = finished
    args = [command, "--storage", storage, "--study-name", "nope"]
    if command == "report":
        args += ["-o", str(tmp_path / "out")]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "no study named 'nope'" in error and "studies there: tiny" in error
