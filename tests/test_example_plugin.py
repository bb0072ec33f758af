"""The example third-party plugin: installed as a package, listed, and used by a study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests import _console
from tests._studies import tiny_space, tiny_study, write_study

pytestmark = pytest.mark.e2e
RANDOM_PRUNING = tiny_space(slots={"prune": ["random"]})


def fedsearch(*args: str, site: Path | None = None) -> subprocess.CompletedProcess:
    if site is None:
        return _console.fedsearch(*args)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return _console.fedsearch(*args, env={"PYTHONPATH": path})


def test_installed_plugin_appears_in_fedsearch_plugins(example_plugin_site):
    result = fedsearch("plugins", "--json", site=example_plugin_site)
    assert result.returncode == 0, result.stderr
    plugins = {entry["name"]: entry for entry in json.loads(result.stdout)}
    example = plugins["random-pruning"]
    assert example["distribution"] == "fedsearch-random-pruning"
    assert example["version"] == "0.1.0"
    assert example["components"] == {
        "compressor": ["random", "logit_adjust"],
        "middleware": ["gaussian_noise"],
    }


def test_a_study_uses_the_plugins_compressor(example_plugin_site, tmp_path):
    study = write_study(tmp_path, tiny_study(search={"n_trials": 2}), RANDOM_PRUNING)
    result = fedsearch("run", str(study), site=example_plugin_site)
    assert result.returncode == 0, result.stderr
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert len(trials) == 2
    for trial in trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        sparsity = trial.params["prune.random.sparsity"]
        assert trial.user_attrs["plugins"]["prune.random"] == "random-pruning==0.1.0"
        assert trial.user_attrs["sparsity"] >= sparsity * 0.8  # its masks really zeroed weights


def test_without_the_plugin_the_same_study_is_refused(tmp_path):
    result = fedsearch("validate", str(write_study(tmp_path, space=RANDOM_PRUNING)))
    assert result.returncode == 2
    assert "unknown compressor 'random'" in result.stderr


def test_the_plugins_own_tests_pass_fedsearchs_conformance_suite(example_plugin_site):
    tests = Path(__file__).resolve().parents[1] / "plugins/fedsearch-example-plugin/tests"
    env = dict(os.environ, PYTHONPATH=str(example_plugin_site))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        capture_output=True, text=True, env=env, cwd=tests,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # nine compressor contract tests for three configurations, five middleware ones
    assert "32 passed" in result.stdout
