"""The RL controller: a seeded REINFORCE policy that learns where the hypervolume grows."""

from __future__ import annotations

import random

import numpy as np
import optuna
import pytest
import torch
from fedsearch_builtins._rl_controller import (
    RLControllerSampler,
    action_count,
    action_of,
    hypervolume_rewards,
    value_of,
)
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

DIRECTIONS = [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]


def toy(trial: optuna.Trial) -> tuple[float, float]:
    """Choice 'b' is the only one that reaches the good corner; x trades accuracy for size."""
    family = trial.suggest_categorical("family", ["a", "b", "c", "d"])
    x = trial.suggest_float("x", 1.0, 1000.0, log=True)
    quality = 0.9 if family == "b" else 0.3
    return quality * (1 - 1 / (1 + np.log10(x))), x * (1.0 if family == "b" else 3.0)


def run(seed: int, trials: int = 40, learning_rate: float = 1.0) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = RLControllerSampler(seed=seed, learning_rate=learning_rate)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(toy, n_trials=trials)
    return study


def test_registered_and_seeded_without_touching_global_rngs(registry):
    assert registry.get("sampler", "rl_controller").cls.uses_history
    states = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    first = [t.params for t in run(3, 12).trials]
    assert first == [t.params for t in run(3, 12).trials]
    assert first != [t.params for t in run(4, 12).trials]
    assert random.getstate() == states[0]
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])


def test_the_policy_learns_the_choice_that_grows_the_hypervolume():
    for seed in range(3):  # a uniform policy would pick 'b' in 15 / 4 = 3.75 of 15 trials
        families = [t.params["family"] for t in run(seed, learning_rate=2.0).trials]
        assert families[-15:].count("b") >= 10, (seed, families)


def test_rewards_are_hypervolume_added_by_feasible_complete_trials():
    def trial(number, values, state=TrialState.COMPLETE, constraints=None):
        made = create_trial(
            state=state,
            values=values if state == TrialState.COMPLETE else None,
            system_attrs={"constraints": constraints} if constraints else {},
        )
        made.number = number
        return made

    trials = [
        trial(0, [0.5, 100.0]),
        trial(1, [0.4, 200.0]),  # dominated by trial 0: negative, by how far
        trial(2, [0.9, 1000.0]),  # extends the front
        trial(3, None, TrialState.PRUNED),
        trial(4, [0.95, 10.0], constraints=[0.2]),  # infeasible
    ]
    rewards = hypervolume_rewards(trials, DIRECTIONS)
    assert rewards[0] > 0 and rewards[2] > 0
    assert rewards[1] < 0
    assert rewards[3] == rewards[4] == min(rewards)  # pruned and infeasible: the worst seen


@pytest.mark.parametrize(
    "distribution",
    [
        FloatDistribution(0.0, 0.95),
        FloatDistribution(1e-4, 1.0, log=True),
        IntDistribution(2, 8),
        IntDistribution(8, 512, log=True),
        FloatDistribution(0.0, 1.0, step=0.25),
        CategoricalDistribution(["x", 3, None]),
    ],
)
def test_every_action_draws_a_value_that_maps_back_to_it(distribution):
    rng = np.random.default_rng(0)
    count = action_count(distribution, 8)
    assert 2 <= count <= 8
    for action in range(count):
        for _ in range(5):
            value = value_of(action, distribution, 8, rng)
            assert distribution._contains(distribution.to_internal_repr(value))
            if not isinstance(distribution, CategoricalDistribution):
                assert abs(action_of(value, distribution, 8) - action) <= 1  # rounding at edges
            else:
                assert action_of(value, distribution, 8) == action
