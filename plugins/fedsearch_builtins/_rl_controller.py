"""A reinforcement-learning controller (after Zoph & Le 2017) for multi-objective search.

The policy is one softmax per param over its actions: the choices of a
categorical param, or ``bins`` equal-width bins of a numeric one (log-spaced
for log ranges; a value is drawn uniformly inside its bin). It is trained with
REINFORCE on a Pareto-aware reward: how much a trial grew the hypervolume of
the trials finished before it. Nothing lives in the process between trials:
each proposal replays REINFORCE over the finished trials in trial order, so
every worker (and a warm start's history) trains the same policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

REFERENCE = 1.1
"""Reference point of the reward's hypervolume, per normalised objective."""
_SEEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _edges(distribution: FloatDistribution | IntDistribution, bins: int) -> np.ndarray:
    low, high = float(distribution.low), float(distribution.high)
    if distribution.log:
        return np.exp(np.linspace(math.log(low), math.log(high), bins + 1))
    return np.linspace(low, high, bins + 1)


def action_count(distribution: BaseDistribution, bins: int) -> int:
    """Actions of one param: its choices, its integer values (when few), else ``bins``."""
    if isinstance(distribution, CategoricalDistribution):
        return len(distribution.choices)
    if isinstance(distribution, IntDistribution) and not distribution.log:
        values = (distribution.high - distribution.low) // distribution.step + 1
        return int(min(values, bins))
    if isinstance(distribution, FloatDistribution) and distribution.step is not None:
        values = round((distribution.high - distribution.low) / distribution.step) + 1
        return int(min(values, bins))
    return bins


def action_of(value: Any, distribution: BaseDistribution, bins: int) -> int:
    """The action that produced ``value``."""
    count = action_count(distribution, bins)
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices.index(value)
    assert isinstance(distribution, (FloatDistribution, IntDistribution))
    edges = _edges(distribution, count)
    return int(np.clip(np.searchsorted(edges, float(value), side="right") - 1, 0, count - 1))


def value_of(
    action: int, distribution: BaseDistribution, bins: int, rng: np.random.Generator
) -> Any:
    """A value of the bin (or the choice) ``action``, drawn with ``rng``."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[action]
    assert isinstance(distribution, (FloatDistribution, IntDistribution))
    edges = _edges(distribution, action_count(distribution, bins))
    low, high = edges[action], edges[action + 1]
    if distribution.log:
        raw = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        raw = rng.uniform(low, high)
    step = distribution.step
    if step is not None:
        raw = distribution.low + round((raw - distribution.low) / step) * step
    value = min(max(raw, distribution.low), distribution.high)
    return round(value) if isinstance(distribution, IntDistribution) else float(value)


def _minimised(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> np.ndarray:
    """Objectives as minimised, positive ranges spanning a decade on a log scale, in [0, 1]."""
    values = np.array([trial.values for trial in trials], dtype=float)
    for m, direction in enumerate(directions):
        column = values[:, m]
        if direction == StudyDirection.MAXIMIZE:
            column = -column
        elif column.min() > 0 and column.max() / column.min() > 10:
            column = np.log10(column)
        values[:, m] = column
    low, high = values.min(axis=0), values.max(axis=0)
    return (values - low) / np.where(high > low, high - low, 1.0)


def _feasible(trial: FrozenTrial) -> bool:
    return all(value <= 0 for value in trial.system_attrs.get("constraints", []) or [])


def hypervolume_rewards(
    trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]
) -> list[float]:
    """Each trial's reward: the hypervolume it added to the feasible trials before it,
    or, when it added none, minus how far it stayed behind them.

    "How far" is the additive epsilon indicator: the least shift, in normalised
    objectives, that would make the trial non-dominated; so a near miss costs
    less than a poor trial and the reward is informative once the front fills.
    A pruned, failed or infeasible trial gets the worst reward seen (0 if none).
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    if not complete:
        return [0.0] * len(trials)
    scaled = dict(zip((t.number for t in complete), _minimised(complete, directions), strict=True))
    reference = np.full(len(directions), REFERENCE)
    front: list[np.ndarray] = []
    volume = 0.0
    rewards: list[float | None] = []
    for trial in trials:
        point = scaled.get(trial.number)
        if point is None or not _feasible(trial):
            rewards.append(None)
            continue
        grown = float(compute_hypervolume(np.array([*front, point]), reference))
        if grown > volume:
            rewards.append(grown - volume)
        else:
            rewards.append(-min(float(np.max(point - other)) for other in front))
        volume = max(volume, grown)
        front.append(point)
    worst = min([r for r in rewards if r is not None], default=0.0)
    return [worst if r is None else r for r in rewards]


class RLControllerSampler(optuna.samplers.BaseSampler):
    """REINFORCE over per-param softmax policies with a hypervolume-improvement reward.

    Args:
        learning_rate: Step of each REINFORCE update of the logits.
        bins: Actions of a numeric param (fewer when it has fewer values).
        baseline_decay: Decay of the moving-average reward baseline.
        seed: Seed of the sampler's own ``numpy`` generator (never the global one).
    """

    def __init__(
        self,
        *,
        learning_rate: float = 1.0,
        bins: int = 8,
        baseline_decay: float = 0.8,
        seed: int | None = None,
    ) -> None:
        self._learning_rate = learning_rate
        self._bins = bins
        self._decay = baseline_decay
        self._rng = np.random.default_rng(seed)
        self._logits: dict[tuple[str, int], np.ndarray] = {}

    def reseed_rng(self) -> None:
        """A fresh generator (Optuna's contract after a fork)."""
        self._rng = np.random.default_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """Nothing jointly: each param is drawn from its own softmax when asked."""
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Unused (empty relative space)."""
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Train the policy on the finished trials, in trial order."""
        finished = sorted(
            (t for t in study.get_trials(deepcopy=False, states=_SEEN) if t.number != trial.number),
            key=lambda t: t.number,
        )
        self._logits = {}
        rewards = np.array(hypervolume_rewards(finished, study.directions))
        scale = float(np.abs(rewards).max()) if len(rewards) and np.abs(rewards).max() > 0 else 1.0
        baseline = 0.0
        for past, reward in zip(finished, rewards / scale, strict=True):
            advantage = reward - baseline
            baseline = self._decay * baseline + (1.0 - self._decay) * reward
            for name, value in past.params.items():
                distribution = past.distributions[name]
                logits = self._policy(name, distribution)
                probabilities = _softmax(logits)
                gradient = -probabilities
                gradient[action_of(value, distribution, self._bins)] += 1.0
                logits += self._learning_rate * advantage * gradient

    def _policy(self, name: str, distribution: BaseDistribution) -> np.ndarray:
        key = (name, action_count(distribution, self._bins))
        return self._logits.setdefault(key, np.zeros(key[1]))

    def policy(self, name: str, distribution: BaseDistribution) -> np.ndarray:
        """The current action probabilities of a param (for inspection and tests)."""
        return _softmax(self._policy(name, distribution))

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Draw an action from the param's softmax, then a value of it."""
        probabilities = self.policy(param_name, param_distribution)
        action = int(self._rng.choice(len(probabilities), p=probabilities))
        return value_of(action, param_distribution, self._bins, self._rng)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()
