"""What the dashboard shows beyond Optuna: rounded params, sparklines, trial notes."""

from __future__ import annotations

import optuna
import pytest

from fedsearch.study._dashboard import shown_url, sparkline
from fedsearch.study._rounding import round_to_step
from fedsearch.study._storage import TrialSeededSampler

GRID = [round(0.3 + 0.05 * k, 2) for k in range(14)]  # 0.3 .. 0.95 as written


def _sampled(sampler: optuna.samplers.BaseSampler, directions: int) -> set[float]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=sampler, directions=["minimize"] * directions)

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        value = trial.suggest_float("sparsity", 0.3, 0.95, step=0.05)
        return (value, -value)[:directions]

    study.optimize(objective, n_trials=60)
    return {trial.params["sparsity"] for trial in study.trials}


@pytest.mark.parametrize(
    ("factory", "directions"),
    [
        (lambda seed: optuna.samplers.RandomSampler(seed=seed), 1),
        (lambda seed: optuna.samplers.TPESampler(seed=seed), 1),
        (lambda seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=10), 2),
    ],
)
def test_stepped_floats_are_stored_on_the_grid_the_user_wrote(factory, directions):
    raw = _sampled(factory(0), directions)
    assert raw - set(GRID), "Optuna alone stores float noise such as 0.6000000000000001"
    rounded = _sampled(TrialSeededSampler(factory, 0), directions)
    assert rounded <= set(GRID)
    assert len(rounded) > 5


def test_rounding_leaves_other_distributions_alone():
    log = optuna.distributions.FloatDistribution(1.0, 10.0, log=True)
    assert round_to_step(3.141592653589793, log) == 3.141592653589793
    whole = optuna.distributions.IntDistribution(1, 9)
    assert round_to_step(4, whole) == 4


def test_sparkline_scales_between_lowest_and_highest():
    assert sparkline([0.1, 0.5, 0.9]) == "▁▅█"
    assert sparkline([0.7, 0.7]) == "▁▁"
    assert sparkline([]) == ""


def test_storage_urls_in_notes_hide_passwords():
    assert shown_url("postgresql://me:secret@db/x") == "postgresql://me:***@db/x"
    assert shown_url("sqlite:///runs/fedsearch.db") == "sqlite:///runs/fedsearch.db"
