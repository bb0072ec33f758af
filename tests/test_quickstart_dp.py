"""studies/quickstart_dp.toml, shrunk: its four-objective front in ``fedsearch pareto`` and
in optuna-dashboard (its API, and the page headless Chromium renders).

The ``pareto`` command that docs/privacy-and-robustness.md shows runs here, on
this shrunk study (tests/test_readme.py leaves it to this file).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from fedsearch.cli._main import main
from tests._dashboard import dashboard_study_id, page_text, screenshot, served_dashboard
from tests._docs import doc_commands
from tests._studies import write_toml
from tests.conftest import REPO, get_json

QUICKSTART_DP = REPO / "studies" / "quickstart_dp.toml"
PRIVACY_PAGE = REPO / "docs" / "privacy-and-robustness.md"
FOUR_OBJECTIVES = ["val_accuracy", "model_bytes", "comm_bytes", "epsilon"]


@pytest.fixture(scope="module")
def tiny_quickstart_dp(tmp_path_factory) -> tuple[str, optuna.Study]:
    """The quickstart_dp study run by ``fedsearch run`` with 3 random trials of 2 rounds:
    (storage URL, study)."""
    folder = tmp_path_factory.mktemp("quickstart_dp")
    study = tomllib.loads(QUICKSTART_DP.read_text())
    study["search"]["space"] = str(REPO / "search_spaces" / "default.toml")
    study["search"] |= {"n_trials": 3, "sampler": {"name": "random"}}
    study["federation"] |= {"rounds": 2, "num_clients": 20}
    study["search"]["constraints"] = {"min_accuracy": 0.0}  # two rounds: keep every trial
    study["output_dir"] = str(folder / "runs")
    assert main(["run", str(write_toml(folder / "quickstart_dp.toml", study))]) == 0
    storage = f"sqlite:///{folder / 'runs' / 'fedsearch.db'}"
    return storage, optuna.load_study(study_name="quickstart_dp", storage=storage)


@pytest.fixture(scope="module")
def dp_dashboard(tiny_quickstart_dp) -> tuple[str, int]:
    """optuna-dashboard serving the tiny quickstart_dp study: (base URL, study id)."""
    storage, study = tiny_quickstart_dp
    artifacts = study.user_attrs["artifact_dir"]
    with served_dashboard(storage, artifacts) as base:
        yield base, dashboard_study_id(base, "quickstart_dp")


def test_a_tiny_quickstart_dp_has_four_objectives_in_pareto(
    tiny_quickstart_dp, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "200")  # room for every column of the table
    storage, stored = tiny_quickstart_dp
    assert stored.metric_names == FOUR_OBJECTIVES
    capsys.readouterr()
    assert main(["pareto", "--storage", storage, "--study-name", "quickstart_dp", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows
    by_number = {trial.number: trial for trial in stored.trials}
    for row in rows:
        trial = by_number[row["trial"]]
        assert set(FOUR_OBJECTIVES) <= set(row)
        assert row["epsilon"] == trial.values[3] == trial.user_attrs["epsilon"]
        assert trial.user_attrs["sampling"] == "poisson"
    (shown,) = [c for c in doc_commands([PRIVACY_PAGE]) if c.args[0] == "pareto"]
    # the page's command, on the shrunk study's runs/fedsearch.db
    monkeypatch.chdir(Path(storage.removeprefix("sqlite:///")).parents[1])
    assert main(shown.args) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["trial"])
    assert re.split(r"\s{2,}", header.strip())[:6] == [
        "trial", "val acc", "test acc", "model", "comm", "epsilon"
    ]  # fmt: skip


def test_optuna_dashboard_shows_the_four_objectives_and_epsilon(tiny_quickstart_dp, dp_dashboard):
    """optuna-dashboard's API (what its pages render) names the four objectives of each trial."""
    base, study_id = dp_dashboard
    detail = get_json(f"{base}/api/studies/{study_id}")
    assert detail["objective_names"] == FOUR_OBJECTIVES
    shown = {trial["number"]: trial for trial in detail["trials"]}
    for trial in tiny_quickstart_dp[1].get_trials(states=(TrialState.COMPLETE,)):
        assert shown[trial.number]["values"] == trial.values
        assert trial.values[3] == trial.user_attrs["epsilon"] > 0


@pytest.mark.browser
def test_headless_chromium_shows_the_four_objectives_of_quickstart_dp(
    tiny_quickstart_dp, dp_dashboard, browser
):
    """The rendered study page: the four objective names, every trial's four values, the
    front with epsilon on its Y axis; a trial page: epsilon in its note (screenshots kept)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, study_id = dp_dashboard
    complete = tiny_quickstart_dp[1].get_trials(states=(TrialState.COMPLETE,))
    text = page_text(browser, f"{base}/dashboard/studies/{study_id}", "Best Trials")
    for name in FOUR_OBJECTIVES:  # the Pareto front's selectors, the importance legend
        assert name in text
    for trial in complete:  # each best trial's four objective values
        assert f"Objective Values = [{', '.join(map(_js_number, trial.values))}]" in text
    axis_y = browser.find_elements(By.CSS_SELECTOR, "[role='combobox']")[1]
    assert axis_y.text == "model_bytes"
    axis_y.click()

    def shown_options(driver):  # the menu faded in: every option visible
        options = driver.find_elements(By.CSS_SELECTOR, "li[role='option']")
        return options if options and all(option.text for option in options) else None

    options = WebDriverWait(browser, 30).until(shown_options)
    assert [option.text for option in options] == FOUR_OBJECTIVES
    options[3].click()
    WebDriverWait(browser, 30).until(lambda driver: axis_y.text == "epsilon")
    WebDriverWait(browser, 30).until_not(  # the menu has faded out of the screenshot
        lambda driver: driver.find_elements(By.CSS_SELECTOR, "li[role='option']")
    )
    points = browser.find_elements(By.CSS_SELECTOR, "#graph-pareto-front .point")
    assert len(points) == len(complete)
    epsilons = [trial.values[3] for trial in complete]
    span = max(epsilons) - min(epsilons)

    def epsilon_ticks(driver):  # the Y axis redrawn in epsilon's range (model bytes: 5k, 10k)
        ticks = driver.find_elements(By.CSS_SELECTOR, "#graph-pareto-front .ytick text")
        values = [float(tick.text) for tick in ticks if _is_number(tick.text)]
        return values and len(values) == len(ticks) and values

    ticks = WebDriverWait(browser, 30).until(epsilon_ticks)
    assert min(epsilons) - span <= min(ticks) and max(ticks) <= max(epsilons) + span
    screenshot(browser, "dashboard-quickstart-dp-study.png")
    trial = complete[0]
    url = f"{base}/dashboard/studies/{study_id}/trials?numbers={trial.number}"
    note = page_text(browser, url, "Learning curve")
    assert f"epsilon {trial.values[3]:.4f}" in note
    screenshot(browser, "dashboard-quickstart-dp-trial.png")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _js_number(value: float) -> str:
    """``value`` as the dashboard's JavaScript prints it (``31948``, not ``31948.0``)."""
    return str(int(value)) if float(value).is_integer() else repr(value)
