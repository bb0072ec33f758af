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

_REDRAW = object()
"""No planned value: draw the param at random when it is asked for."""
_LIVE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def _is_copy(existing: dict[str, Any], child: dict[str, Any]) -> bool:
    """Whether ``child`` would repeat ``existing``: same value for every param it holds.

    The params a trial asks for follow from the values of the ones before
    (family, then that family's depth, then that many widths), so a child that
    agrees with an earlier trial on all of that trial's params asks for exactly
    those params and repeats the trial.
    """
    return bool(existing) and all(
        name in child and child[name] == value for name, value in existing.items()
    )


class _ConditionalInheritanceMixin:
    """Conditional params come from a matching parent; children never repeat a trial.

    ``sample_relative`` breeds the shared params (Optuna's crossover and
    mutation) and plans every conditional param at once: inherited from the
    parent that agrees most with the child's shared params (one donor per
    child, ties at random), or redrawn at ``conditional_mutation_prob``
    (mutations are drawn while planning, so the whole child is known). A
    child that would repeat an earlier trial (common with small populations)
    is bred again, up to ``max_attempts`` times, so the budget is not spent
    re-measuring known points.
    """

    _conditional_mutation_prob: float
    _inherit_rng: np.random.RandomState
    _plans: dict[int, dict[str, tuple[Any, BaseDistribution | None]]]
    _max_attempts: int = 20

    def _init_conditional(self, conditional_mutation_prob: float, seed: int | None) -> None:
        self._conditional_mutation_prob = conditional_mutation_prob
        self._inherit_rng = np.random.RandomState(seed)
        self._plans = {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Breed a child that repeats no earlier trial, and plan its conditional params."""
        generation = self.get_trial_generation(study, trial)  # type: ignore[attr-defined]
        parents = self.get_parent_population(study, generation)  # type: ignore[attr-defined]
        if not parents:
            return {}
        existing = [
            other.params
            for other in study.get_trials(deepcopy=False, states=_LIVE_STATES)
            if other.number != trial.number
        ]
        for _ in range(self._max_attempts):
            child = self._child_generation_strategy(  # type: ignore[attr-defined]
                study, search_space, parents
            )
            for name, distribution in search_space.items():  # mutated: drawn now, not later
                if name not in child:
                    child[name] = self._draw(study, trial, name, distribution)
            plan = self._plan_conditional(study, trial, parents, child, search_space)
            merged = {name: value for name, (value, _) in plan.items()} | child
            if not any(_is_copy(params, merged) for params in existing):
                break
        self._plans[trial._trial_id] = plan
        return child

    def _draw(
        self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: BaseDistribution
    ) -> Any:
        return self._random_sampler.sample_independent(  # type: ignore[attr-defined]
            study, trial, name, distribution
        )

    def _plan_conditional(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        parents: Sequence[FrozenTrial],
        child: dict[str, Any],
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, tuple[Any, BaseDistribution | None]]:
        order = self._inherit_rng.permutation(len(parents))
        ranked = sorted(
            (parents[i] for i in order),
            key=lambda parent: -sum(parent.params.get(n) == v for n, v in child.items()),
        )
        plan: dict[str, tuple[Any, BaseDistribution | None]] = {}
        for donor in ranked:  # the best-matching donor first; others fill what it lacks
            for name, value in donor.params.items():
                if name in search_space or name in plan:
                    continue
                distribution = donor.distributions[name]
                if self._inherit_rng.rand() < self._conditional_mutation_prob:
                    value = self._draw(study, trial, name, distribution)
                plan[name] = (value, distribution)
        return plan

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """The planned (inherited) value of a conditional param, else a random one."""
        value, distribution = self._plans.get(trial._trial_id, {}).get(param_name, (_REDRAW, None))
        if value is not _REDRAW and distribution == param_distribution:
            return value
        return super().sample_independent(  # type: ignore[misc]
            study, trial, param_name, param_distribution
        )

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Forget the trial's plan, then Optuna's bookkeeping."""
        self._plans.pop(trial._trial_id, None)
        super().after_trial(study, trial, state, values)  # type: ignore[misc]


class ConditionalNSGAIISampler(_ConditionalInheritanceMixin, NSGAIISampler):
    """``NSGAIISampler`` that also evolves conditional params and avoids repeats.

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
        self._init_conditional(conditional_mutation_prob, seed)


class ConditionalNSGAIIISampler(_ConditionalInheritanceMixin, NSGAIIISampler):
    """``NSGAIIISampler`` that also evolves conditional params, like the NSGA-II one."""

    def __init__(
        self, *, conditional_mutation_prob: float = 0.1, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self._init_conditional(conditional_mutation_prob, seed)


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
