"""optuna-dashboard on a fedsearch study: its API, and the page rendered by headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from optuna.trial import TrialState

from fedsearch import OBJECTIVE_NAMES, resolve_study, run_study
from fedsearch._units import format_bytes, format_ratio
from fedsearch.study import save_dashboard_plots
from tests._dashboard import dashboard_study_id, page_text, screenshot, served_dashboard
from tests.conftest import CHROMIUM_FLAGS, get_json, write_tiny_study


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, registry):
    """A finished tiny study served by optuna-dashboard: (base URL, study id, study)."""
    folder = tmp_path_factory.mktemp("dashboard")
    study = resolve_study(write_tiny_study(folder), registry)
    optuna_study = run_study(study)
    save_dashboard_plots(study, optuna_study)  # what `fedsearch run` does after its trials
    artifacts = optuna_study.user_attrs["artifact_dir"]
    with served_dashboard(study.storage_url, artifacts) as base:
        yield base, dashboard_study_id(base, "tiny"), optuna_study


def test_dashboard_api_shows_metric_names_note_attributes_and_artifacts(dashboard):
    base, study_id, optuna_study = dashboard
    detail = get_json(f"{base}/api/studies/{study_id}")
    assert detail["objective_names"] == list(OBJECTIVE_NAMES)
    assert detail["note"]["body"].startswith("# fedsearch study `tiny`")
    assert "| `prune.magnitude.sparsity` | prune == 'magnitude' |" in detail["note"]["body"]
    complete = optuna_study.get_trials(states=(TrialState.COMPLETE,))
    shown = {trial["number"]: trial for trial in detail["trials"]}
    for trial in complete:
        artifacts = {a["filename"]: a for a in shown[trial.number]["artifacts"]}
        assert set(artifacts) == {f"trial-{trial.number}.fsz", f"history-{trial.number}.json"}
        model = artifacts[f"trial-{trial.number}.fsz"]
        assert model["artifact_id"] == trial.user_attrs["artifact_id"]
        history = artifacts[f"history-{trial.number}.json"]
        assert history["artifact_id"] == trial.user_attrs["history_artifact_id"]
        stored = get_json(
            f"{base}/artifacts/{study_id}/{shown[trial.number]['trial_id']}/"
            f"{history['artifact_id']}"
        )
        assert stored == trial.user_attrs["history"]  # the full history, nothing cut
        note = shown[trial.number]["note"]["body"]
        accuracy, model_bytes, comm_bytes = trial.values
        assert note.startswith(
            f"## Trial {trial.number}: validation accuracy {accuracy:.4f}, model size "
            f"{format_bytes(model_bytes)}, communication {format_bytes(comm_bytes)}"
        )
        assert "### Learning curve" in note and "### Layers: bits and sparsity" in note
        attrs = {attr["key"]: attr["value"] for attr in shown[trial.number]["user_attrs"]}
        assert attrs["summary"].startswith("mlp(")
        assert attrs["worker"] == trial.user_attrs["worker"]
        assert float(attrs["test_accuracy"]) == trial.user_attrs["test_accuracy"]


class _ParetoGraph(HTMLParser):
    """Counts the plotted points inside the element ``id="graph-pareto-front"``."""

    VOID = frozenset({"path", "rect", "line", "circle", "stop", "use", "br", "img", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.found = False
        self.points = 0
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id") == "graph-pareto-front":
            self.found, self._depth = True, 0
        if self._depth or values.get("id") == "graph-pareto-front":
            if "point" in (values.get("class") or "").split():
                self.points += 1
            if tag not in self.VOID:
                self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self._depth and tag not in self.VOID:
            self._depth -= 1


def _render(url: str, profile: Path) -> str:
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is missing: apt-get install -y chromium chromium-driver"
    result = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.browser
def test_headless_chromium_renders_the_pareto_front(dashboard, tmp_path):
    base, study_id, optuna_study = dashboard
    complete = optuna_study.get_trials(states=(TrialState.COMPLETE,))
    for attempt in range(3):  # a loaded machine may need longer than one virtual-time budget
        dom = _render(f"{base}/dashboard/studies/{study_id}", tmp_path / f"profile-{attempt}")
        graph = _ParetoGraph()
        graph.feed(dom)
        if graph.points:
            break
    assert "Pareto Front" in dom
    assert graph.found
    assert graph.points == len(complete)  # one plotted marker per COMPLETE trial
    for name in OBJECTIVE_NAMES:  # the objective selectors offer the metric names
        assert name in dom


@pytest.mark.browser
def test_trial_page_shows_labelled_objectives_and_the_learning_curve(dashboard, browser):
    base, study_id, optuna_study = dashboard
    for trial in optuna_study.get_trials(states=(TrialState.COMPLETE,)):
        url = f"{base}/dashboard/studies/{study_id}/trials?numbers={trial.number}"
        text = page_text(browser, url, "Learning curve")
        accuracy, model_bytes, comm_bytes = trial.values
        assert f"Trial {trial.number}: validation accuracy {accuracy:.4f}" in text
        assert f"model size {format_bytes(model_bytes)} ({int(model_bytes):,} bytes)" in text
        assert f"communication {format_bytes(comm_bytes)}" in text
        teacher = optuna_study.user_attrs["teacher"]
        assert f"{format_ratio(teacher['artifact_bytes'], model_bytes)} smaller" in text
        for record in trial.user_attrs["history"]:  # every round of the learning curve
            assert f"{record['round']} {record['val_accuracy']:.4f} " in text
        for label in trial.user_attrs["layer_labels"].values():
            assert label in text  # per-layer bits and sparsity under readable names
        assert f"--trial {trial.number} --format onnx" in text
        screenshot(browser, f"dashboard-trial-{trial.number}.png")


@pytest.mark.browser
def test_study_note_shows_the_plots(dashboard, browser):
    base, study_id, optuna_study = dashboard
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    text = page_text(browser, f"{base}/dashboard/studies/{study_id}/note", "Plots")
    assert "The star is the teacher; byte axes are logarithmic" in text
    *plot_ids, config_id = optuna_study.user_attrs["dashboard_plots"]
    assert len(plot_ids) == 4  # three pairs of objectives and the learning curves
    config = get_json(f"{base}/artifacts/{study_id}/{config_id}")
    assert config == optuna_study.user_attrs["config"]  # in full, not cut at 1,024 chars

    def loaded(driver):
        images = driver.find_elements(By.CSS_SELECTOR, "img[alt^='pareto-'], img[alt^='learning']")
        widths = {
            i.get_attribute("src").rsplit("/", 1)[1]: i.get_property("naturalWidth") for i in images
        }
        return widths if set(widths) == set(plot_ids) and all(widths.values()) else None

    assert WebDriverWait(browser, 60).until(loaded)
    screenshot(browser, "dashboard-study.png")
