"""Search strategies for conditional spaces: a conditional-aware NSGA-II and regularized evolution.

Optuna's genetic samplers evolve only the params every trial has (the
intersection search space) and draw every other param at random. In a
fedsearch space almost every knob is conditional (a family's widths exist only
when that family is chosen, bits only when a quantizer is on), so stock
NSGA-II evolves little more than which components are switched on. The
samplers here pass conditional params down from parent to child as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, NSGAIIISampler, NSGAIISampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


def _inherit(
    rng: np.random.RandomState,
    parents: Sequence[FrozenTrial],
    trial: FrozenTrial,
    param_name: str,
    distribution: BaseDistribution,
) -> tuple[bool, Any]:
    """Pick the parent most like ``trial`` that has ``param_name`` and return its value.

    Likeness is the number of params ``trial`` already holds with the same
    value (the components chosen so far), so a child usually inherits from the
    parent whose family and compressors it took.
    """
    holders = [
        parent
        for parent in parents
        if param_name in parent.params and parent.distributions[param_name] == distribution
    ]
    if not holders:
        return False, None
    scores = np.array(
        [
            sum(parent.params.get(name) == value for name, value in trial.params.items())
            for parent in holders
        ]
    )
    best = np.flatnonzero(scores == scores.max())
    return True, holders[int(rng.choice(best))].params[param_name]


class _ConditionalInheritanceMixin:
    """Conditional params come from a matching parent (mutated at ``mutation_prob``)."""

    _conditional_mutation_prob: float
    _inherit_rng: np.random.RandomState

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Inherit a param outside the intersection space from a parent, else sample it."""
        generation = self.get_trial_generation(study, trial)  # type: ignore[attr-defined]
        parents = self.get_parent_population(study, generation)  # type: ignore[attr-defined]
        if parents and self._inherit_rng.rand() >= self._conditional_mutation_prob:
            found, value = _inherit(
                self._inherit_rng, parents, trial, param_name, param_distribution
            )
            if found:
                return value
        return super().sample_independent(  # type: ignore[misc]
            study, trial, param_name, param_distribution
        )


class ConditionalNSGAIISampler(_ConditionalInheritanceMixin, NSGAIISampler):
    """``NSGAIISampler`` that also evolves conditional params.

    Args:
        conditional_mutation_prob: Chance that a conditional param is drawn at
            random instead of inherited.
        seed: Seed of every random choice.
        **kwargs: Passed to ``NSGAIISampler``.
    """

    def __init__(
        self, *, conditional_mutation_prob: float = 0.1, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self._conditional_mutation_prob = conditional_mutation_prob
        self._inherit_rng = np.random.RandomState(seed)


class ConditionalNSGAIIISampler(_ConditionalInheritanceMixin, NSGAIIISampler):
    """``NSGAIIISampler`` that also evolves conditional params, like the NSGA-II one."""

    def __init__(
        self, *, conditional_mutation_prob: float = 0.1, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self._conditional_mutation_prob = conditional_mutation_prob
        self._inherit_rng = np.random.RandomState(seed)


def _minimised(values: Sequence[float], directions: Sequence[StudyDirection]) -> np.ndarray:
    return np.array(
        [
            -value if direction == StudyDirection.MAXIMIZE else value
            for value, direction in zip(values, directions, strict=True)
        ]
    )


def _violation(trial: FrozenTrial) -> float:
    return float(sum(max(0.0, value) for value in trial.constraints.values()))


def select_parent(
    rng: np.random.RandomState,
    contestants: Sequence[FrozenTrial],
    directions: Sequence[StudyDirection],
) -> FrozenTrial:
    """Tournament winner: least constraint violation, then not dominated, ties at random."""
    least = min(_violation(trial) for trial in contestants)
    feasible = [trial for trial in contestants if _violation(trial) == least]
    points = [_minimised(trial.values, directions) for trial in feasible]
    winners = [
        trial
        for trial, point in zip(feasible, points, strict=True)
        if not any(np.all(other <= point) and np.any(other < point) for other in points)
    ]
    return winners[int(rng.randint(len(winners)))]


class RegularizedEvolutionSampler(BaseSampler):
    """Regularized (ageing) evolution, after Real et al. 2019, for one or many objectives.

    The population is the ``population_size`` most recent finished trials, so
    every trial dies of age, however good it was. A new trial draws
    ``sample_size`` members, takes the tournament winner as its parent (least
    constraint violation, then not dominated within the sample, ties at random),
    copies the parent's params and redraws one of them at random. Params the
    parent lacks (a newly switched-on component's knobs) are drawn at random.
    Until the population is full, trials are random.

    Args:
        population_size: Trials alive at a time.
        sample_size: Tournament size.
        seed: Seed of every random choice.
    """

    def __init__(
        self, *, population_size: int = 10, sample_size: int = 3, seed: int | None = None
    ) -> None:
        if not 1 <= sample_size <= population_size:
            raise ValueError("need 1 <= sample_size <= population_size")
        self._population_size = population_size
        self._sample_size = sample_size
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)
        self._plans: dict[int, tuple[FrozenTrial, str | None]] = {}

    def reseed_rng(self) -> None:
        """Reseed after a fork (Optuna's contract)."""
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """Nothing is sampled jointly: params are copied one at a time."""
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Unused (empty relative space)."""
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Pick this trial's parent and the param it mutates."""
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(finished) < self._population_size:
            return
        population = sorted(finished, key=lambda t: t.number)[-self._population_size :]
        picks = self._rng.choice(len(population), self._sample_size, replace=False)
        parent = select_parent(self._rng, [population[i] for i in picks], study.directions)
        names = sorted(parent.params)
        mutated = names[int(self._rng.randint(len(names)))] if names else None
        self._plans[trial._trial_id] = (parent, mutated)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """The parent's value, unless this param mutates or the parent lacks it."""
        parent, mutated = self._plans.get(trial._trial_id, (None, None))
        if (
            parent is not None
            and param_name != mutated
            and param_name in parent.params
            and parent.distributions[param_name] == param_distribution
        ):
            return parent.params[param_name]
        value = self._random.sample_independent(study, trial, param_name, param_distribution)
        if parent is not None and param_name == mutated:
            for _ in range(8):  # a mutation should change something
                if value != parent.params[param_name]:
                    break
                value = self._random.sample_independent(
                    study, trial, param_name, param_distribution
                )
        return value

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Forget the trial's plan."""
        self._plans.pop(trial._trial_id, None)
