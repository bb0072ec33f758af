"""Service markers: missing PostgreSQL or Chromium skip with a reason, or fail under CI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import POSTGRES_ENV, REPO, REQUIRE_SERVICES_ENV

PROBE = """
import pytest


def test_uses_a_database(postgres_url):
    pass


@pytest.mark.browser
def test_uses_chromium():
    pass
"""


def run_probe(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run two service tests on a machine without PostgreSQL (a closed port) or Chromium."""
    (tmp_path / "test_probe.py").write_text(PROBE)
    environment = {
        **{key: value for key, value in os.environ.items() if key != REQUIRE_SERVICES_ENV},
        POSTGRES_ENV: "postgresql+psycopg://postgres@127.0.0.1:9/test",
        "PATH": str(tmp_path),  # no chromium on it
        **env,
    }
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-rs", "-q"]
    config = ["-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO), "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, *config, str(tmp_path / "test_probe.py")],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_missing_services_skip_with_a_reason(tmp_path):
    result = run_probe(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 skipped" in result.stdout
    assert "PostgreSQL is not reachable at postgresql+psycopg://postgres@127.0.0.1:9/test" in (
        result.stdout
    )
    assert "Chromium is not installed" in result.stdout


@pytest.mark.slow
def test_missing_services_fail_when_required(tmp_path):
    result = run_probe(tmp_path, **{REQUIRE_SERVICES_ENV: "1"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 error" in result.stdout
    assert "PostgreSQL is not reachable" in result.stdout
    assert f"{REQUIRE_SERVICES_ENV}=1 requires it" in result.stdout
