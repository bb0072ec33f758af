"""optuna-dashboard on a fedsearch study: its API, and the page rendered by headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from optuna.trial import TrialState

from fedsearch import OBJECTIVE_NAMES, resolve_study, run_study
from tests.conftest import free_port, get_json, write_tiny_study

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, registry):
    """A finished tiny study served by optuna-dashboard: (base URL, study id, study)."""
    folder = tmp_path_factory.mktemp("dashboard")
    study = resolve_study(write_tiny_study(folder), registry)
    optuna_study = run_study(study)
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("optuna-dashboard")),
            study.storage_url,
            "--port",
            str(port),
            "--artifact-dir",
            optuna_study.user_attrs["artifact_dir"],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        summaries = get_json(f"{base}/api/studies")["study_summaries"]
        (summary,) = [s for s in summaries if s["study_name"] == "tiny"]
        yield base, summary["study_id"], optuna_study
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_dashboard_api_shows_metric_names_note_attributes_and_artifacts(dashboard):
    base, study_id, optuna_study = dashboard
    detail = get_json(f"{base}/api/studies/{study_id}")
    assert detail["objective_names"] == list(OBJECTIVE_NAMES)
    assert detail["note"]["body"].startswith("# fedsearch study `tiny`")
    assert "| `prune.magnitude.sparsity` | prune == 'magnitude' |" in detail["note"]["body"]
    complete = optuna_study.get_trials(states=(TrialState.COMPLETE,))
    shown = {trial["number"]: trial for trial in detail["trials"]}
    for trial in complete:
        (artifact,) = shown[trial.number]["artifacts"]
        assert artifact["filename"] == f"trial-{trial.number}.fsz"
        assert artifact["artifact_id"] == trial.user_attrs["artifact_id"]
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
