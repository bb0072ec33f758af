"""optuna-dashboard served over a study's storage, and pages read by headless Chromium.

The ``browser`` fixture (Selenium's Chromium) is in ``conftest.py``; these are
the helpers the dashboard tests share.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import REPO, free_port, get_json

SCREENSHOTS = REPO / "runs" / "test-screenshots"
"""Where the browser tests keep their screenshots (``runs/`` is git-ignored)."""


@contextlib.contextmanager
def served_dashboard(storage: str, artifact_dir: str | None = None) -> Iterator[str]:
    """optuna-dashboard on ``storage`` (and its artifacts) on a free port: its base URL."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("optuna-dashboard")), storage]
    command += ["--port", str(port)]
    if artifact_dir is not None:
        command += ["--artifact-dir", artifact_dir]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def dashboard_study_id(base: str, study_name: str) -> int:
    """The dashboard's id of the study named ``study_name`` (waits for the server to answer)."""
    summaries = get_json(f"{base}/api/studies")["study_summaries"]
    (summary,) = [s for s in summaries if s["study_name"] == study_name]
    return summary["study_id"]


def page_text(browser: Any, url: str, waits_for: str) -> str:
    """The visible text of ``url`` once it contains ``waits_for`` (up to 90 s)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 90).until(
        lambda driver: waits_for in driver.find_element(By.TAG_NAME, "body").text
    )
    return browser.find_element(By.TAG_NAME, "body").text


def screenshot(browser: Any, name: str) -> Path:
    """Save the browser's page as ``SCREENSHOTS/name`` and check it is a PNG."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / name
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    return shot
