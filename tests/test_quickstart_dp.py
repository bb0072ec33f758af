"""studies/quickstart_dp.toml, shrunk: its four-objective front shows in ``fedsearch pareto``.

The ``pareto`` command that docs/privacy-and-robustness.md shows runs here, on
this shrunk study (tests/test_readme.py leaves it to this file).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import optuna

from fedsearch.cli._main import main
from tests._docs import doc_commands
from tests._studies import write_toml
from tests.conftest import REPO, free_port, get_json

QUICKSTART_DP = REPO / "studies" / "quickstart_dp.toml"
PRIVACY_PAGE = REPO / "docs" / "privacy-and-robustness.md"


def test_a_tiny_quickstart_dp_has_four_objectives_in_pareto(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # room for every column of the table
    study = tomllib.loads(QUICKSTART_DP.read_text())
    study["search"]["space"] = str(REPO / "search_spaces" / "default.toml")
    study["search"]["n_trials"] = 3
    study["search"]["sampler"] = {"name": "random"}
    study["federation"] |= {"rounds": 2, "num_clients": 20}
    study["search"]["constraints"] = {"min_accuracy": 0.0}  # two rounds: keep every trial
    study["output_dir"] = str(tmp_path / "runs")
    path = write_toml(tmp_path / "quickstart_dp.toml", study)
    assert main(["run", str(path)]) == 0
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    stored = optuna.load_study(study_name="quickstart_dp", storage=storage)
    assert stored.metric_names == ["val_accuracy", "model_bytes", "comm_bytes", "epsilon"]
    capsys.readouterr()
    assert main(["pareto", "--storage", storage, "--study-name", "quickstart_dp", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows
    by_number = {trial.number: trial for trial in stored.trials}
    for row in rows:
        trial = by_number[row["trial"]]
        assert {"val_accuracy", "model_bytes", "comm_bytes", "epsilon"} <= set(row)
        assert row["epsilon"] == trial.values[3] == trial.user_attrs["epsilon"]
        assert trial.user_attrs["sampling"] == "poisson"
    (shown,) = [c for c in doc_commands([PRIVACY_PAGE]) if c.args[0] == "pareto"]
    monkeypatch.chdir(tmp_path)  # the page's command, on the shrunk study's runs/fedsearch.db
    assert main(shown.args) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["trial"])
    assert re.split(r"\s{2,}", header.strip())[:6] == [
        "trial", "val acc", "test acc", "model", "comm", "epsilon"
    ]  # fmt: skip


def test_optuna_dashboard_shows_the_four_objectives_and_epsilon(tmp_path, monkeypatch):
    """optuna-dashboard's API (what its pages render) names the four objectives of each trial."""
    monkeypatch.setenv("COLUMNS", "200")
    study = tomllib.loads(QUICKSTART_DP.read_text())
    study["search"]["space"] = str(REPO / "search_spaces" / "default.toml")
    study["search"] |= {"n_trials": 2, "sampler": {"name": "random"}}
    study["federation"] |= {"rounds": 2, "num_clients": 20}
    study["search"]["constraints"] = {"min_accuracy": 0.0}
    study["output_dir"] = str(tmp_path / "runs")
    assert main(["run", str(write_toml(tmp_path / "quickstart_dp.toml", study))]) == 0
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    stored = optuna.load_study(study_name="quickstart_dp", storage=storage)
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("optuna-dashboard")), storage, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        (summary,) = get_json(f"{base}/api/studies")["study_summaries"]
        detail = get_json(f"{base}/api/studies/{summary['study_id']}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert detail["objective_names"] == ["val_accuracy", "model_bytes", "comm_bytes", "epsilon"]
    shown = {trial["number"]: trial for trial in detail["trials"]}
    for trial in stored.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert shown[trial.number]["values"] == trial.values
        assert trial.values[3] == trial.user_attrs["epsilon"] > 0
