"""Warm start: begin a study from an earlier study's feasible front and trials.

The earlier study's feasible Pareto front is enqueued (re-evaluated in the new
study, so every point of the new front is measured under the new study's
configuration), and samplers that learn from history (``Sampler.uses_history``:
TPE, GP, the RL controller) also see its COMPLETE trials while proposing. Those
trials are never written into the new study: its front, budget and exports hold
only its own trials.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from fedsearch._errors import ConfigError
from fedsearch.config import WarmStartConfig
from fedsearch.search._resolve import ResolvedStudy
from fedsearch.study._pareto import is_feasible, load_existing_study

WARM_START_ATTR = "warm_start_of"
"""User attribute of an enqueued trial: ``<study>#<trial number>`` it re-evaluates."""
FIELD = "search.warm_start"


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """An earlier study's trials, checked against the new study's space.

    Attributes:
        source: ``study`` name of the earlier study.
        trials: Its COMPLETE trials (numbered from -1 down, so they never
            collide with the new study's).
        front: Its feasible Pareto front, in trial order.
    """

    source: str
    trials: tuple[FrozenTrial, ...]
    front: tuple[FrozenTrial, ...]


def with_warm_start(study: ResolvedStudy, name: str, storage: str | None) -> ResolvedStudy:
    """``study`` warm-started from ``name`` (the ``--warm-start`` flag overriding the file)."""
    search = study.config.search.model_copy(
        update={"warm_start": WarmStartConfig(study=name, storage=storage)}
    )
    return dataclasses.replace(study, config=study.config.model_copy(update={"search": search}))


def load_warm_start(study: ResolvedStudy) -> WarmStart | None:
    """Load and check the study's warm start (before anything is stored).

    Raises:
        ConfigError: The earlier study is missing, has other objectives, or
            searched a param this study's space does not hold.
    """
    config = study.config.search.warm_start
    if config is None:
        return None
    storage = config.storage or study.storage_url
    try:
        source = load_existing_study(storage, config.study)
    except ConfigError as error:
        raise ConfigError(str(error).split(": ", 1)[-1], source=study.source, field=FIELD) from None
    if source.directions != [optuna.study.StudyDirection[d.upper()] for d in study.directions]:
        raise ConfigError(
            f"study {config.study!r} has {len(source.directions)} objectives "
            f"({source.metric_names}), this one {study.metric_names}; warm-start from a study "
            "with the same objectives",
            source=study.source,
            field=FIELD,
        )
    return warm_start_from(study, source)


def warm_start_from(study: ResolvedStudy, source: optuna.Study) -> WarmStart:
    """``source``'s trials and feasible front, checked against ``study``'s space.

    Raises:
        ConfigError: ``source`` searched a param this study's space does not hold.
    """
    complete = source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    space = space_distributions(study)
    for trial in complete:
        _check_params(trial, space, source.study_name, study.source)
    renumbered = tuple(_renumbered(trial, -1 - index) for index, trial in enumerate(complete))
    front = _feasible_front(complete, source.directions)
    return WarmStart(source.study_name, renumbered, tuple(front))


def space_distributions(study: ResolvedStudy) -> Callable[[str], BaseDistribution | None]:
    """Look up the distribution of an Optuna param name in the study's space (None: unknown)."""
    table: dict[str, BaseDistribution] = {}
    per_layer: dict[str, BaseDistribution] = {}
    for slot, candidates in study.space.slots.items():
        if len(candidates) > 1:
            table[slot] = CategoricalDistribution(candidates)
        for name in candidates:
            for dim in study.space.dimensions.get((slot, name), []):
                if dim.distribution is None:
                    continue
                target = table if dim.per_layer is None else per_layer
                target[dim.name] = dim.distribution

    def lookup(param: str) -> BaseDistribution | None:
        if param in table:
            return table[param]
        stem, _, index = param.rpartition(".")
        return per_layer.get(stem) if index.isdigit() else None

    return lookup


def _check_params(
    trial: FrozenTrial,
    space: Callable[[str], BaseDistribution | None],
    source_name: str,
    source_file: str,
) -> None:
    for name, value in trial.params.items():
        distribution = space(name)
        fits = distribution is not None
        if fits:
            try:
                fits = distribution._contains(distribution.to_internal_repr(value))  # type: ignore[union-attr]
            except (ValueError, TypeError):
                fits = False
        if not fits:
            where = "is not searched here" if distribution is None else "is outside this space"
            raise ConfigError(
                f"study {source_name!r} is not compatible: its trial {trial.number} has "
                f"{name} = {value!r}, which {where}; warm-start from a study over the same "
                "search space (or widen this one)",
                source=source_file,
                field=FIELD,
            )


def _renumbered(trial: FrozenTrial, number: int) -> FrozenTrial:
    copy = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        values=trial.values,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=dict(trial.user_attrs),
        system_attrs={"constraints": list(trial.system_attrs.get("constraints", []))},
    )
    copy.number = number
    copy._trial_id = number
    return copy


def _feasible_front(
    trials: Sequence[FrozenTrial], directions: Sequence[optuna.study.StudyDirection]
) -> list[FrozenTrial]:
    feasible = [trial for trial in trials if is_feasible(trial)]
    minimize = optuna.study.StudyDirection.MINIMIZE
    signs = np.array([1.0 if d == minimize else -1.0 for d in directions])
    points = np.array([np.asarray(trial.values) * signs for trial in feasible])
    return [
        trial
        for i, trial in enumerate(feasible)
        if not any(
            np.all(points[j] <= points[i]) and np.any(points[j] < points[i])
            for j in range(len(feasible))
        )
    ]


def enqueue_front(optuna_study: optuna.Study, warm: WarmStart) -> None:
    """Queue the earlier front's params as the new study's first trials."""
    for trial in warm.front:
        optuna_study.enqueue_trial(
            trial.params,
            user_attrs={WARM_START_ATTR: f"{warm.source}#{trial.number}"},
        )


class StudyWithHistory:
    """A study as a sampler sees it, with an earlier study's trials in front of its own."""

    def __init__(self, study: optuna.Study, history: Sequence[FrozenTrial]) -> None:
        self._study = study
        self._history = list(history)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _earlier(self, states: Sequence[TrialState] | None) -> list[FrozenTrial]:
        return [t for t in self._history if states is None or t.state in states]

    def get_trials(
        self, deepcopy: bool = True, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        """The earlier study's trials, then this study's."""
        return self._earlier(states) + self._study.get_trials(deepcopy=deepcopy, states=states)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Sequence[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        return self._earlier(states) + self._study._get_trials(
            deepcopy=deepcopy, states=states, use_cache=use_cache
        )

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial, the earlier study's first."""
        return self.get_trials()


class HistorySampler(optuna.samplers.BaseSampler):
    """Runs ``sampler`` on the study with an earlier study's trials in front (warm start)."""

    def __init__(
        self, sampler: optuna.samplers.BaseSampler, history: Sequence[FrozenTrial]
    ) -> None:
        self._sampler = sampler
        self._history = tuple(history)

    def _seen(self, study: optuna.Study) -> optuna.Study:
        return StudyWithHistory(study, self._history)  # type: ignore[return-value]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Delegate, with history."""
        self._sampler.before_trial(self._seen(study), trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """Delegate, with history."""
        return self._sampler.infer_relative_search_space(self._seen(study), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Delegate, with history."""
        return self._sampler.sample_relative(self._seen(study), trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Delegate, with history."""
        return self._sampler.sample_independent(
            self._seen(study), trial, param_name, param_distribution
        )

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Delegate (the sampler's bookkeeping is about this study's trial)."""
        self._sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Delegate."""
        self._sampler.reseed_rng()


def sampler_factory(
    study: ResolvedStudy, warm: WarmStart | None
) -> Callable[[int | None], optuna.samplers.BaseSampler]:
    """Builds the study's sampler for a seed; one that uses history sees ``warm``'s trials."""
    component = study.sampler.build()
    create = component.create  # type: ignore[attr-defined]
    if warm is None or not getattr(component, "uses_history", False):
        return lambda seed: create(seed=seed)
    return lambda seed: HistorySampler(create(seed=seed), warm.trials)
