"""Extra objectives through the real console script: every trial line shows them."""

from __future__ import annotations

import re

import optuna
import pytest
from optuna.trial import TrialState

from tests._console import fedsearch
from tests._studies import tiny_study, write_study

pytestmark = pytest.mark.e2e


def test_run_with_flops_and_latency_finishes_its_budget_and_shows_them(tmp_path):
    objectives = [{"name": "flops"}, {"name": "latency", "params": {"runs": 3, "warmup": 1}}]
    study = tiny_study(
        federation={"rounds": 1}, teacher={"rounds": 1}, search={"objectives": objectives}
    )
    result = fedsearch("run", str(write_study(tmp_path, study)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    stored = optuna.load_study(
        study_name="tiny", storage=f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    )
    assert stored.metric_names[3:] == ["flops", "latency_ms"]
    complete = stored.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    lines = re.findall(
        r"^trial (\d+): val acc .* flops (\S+)  latency_ms (\S+)", result.stdout, re.M
    )
    assert sorted(int(number) for number, _, _ in lines) == [trial.number for trial in complete]
    by_number = {trial.number: trial for trial in complete}
    for number, flops, latency in lines:
        values = by_number[int(number)].values
        assert len(values) == 5
        assert float(flops) == pytest.approx(values[3], rel=1e-3)
        assert values[3] > 0 and values[4] > 0
        assert float(latency) == pytest.approx(values[4], rel=1e-3)
