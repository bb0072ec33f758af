"""Search strategies: conditional-aware NSGA-II (default) and NSGA-III, TPE, GP, random,
regularized evolution and a reinforcement-learning controller."""

from __future__ import annotations

import warnings
from typing import Annotated

import optuna
from pydantic import Field

from fedsearch import ComponentParams, Registrar, Sampler, hookimpl
from fedsearch_builtins._conditional_samplers import (
    ConditionalNSGAIIISampler,
    ConditionalNSGAIISampler,
    RegularizedEvolutionSampler,
    select_parent,
)
from fedsearch_builtins._rl_controller import RLControllerSampler

__all__ = [
    "GP",
    "NSGA2",
    "NSGA3",
    "TPE",
    "ConditionalNSGAIIISampler",
    "ConditionalNSGAIISampler",
    "RLController",
    "RLControllerSampler",
    "Random",
    "RegularizedEvolution",
    "RegularizedEvolutionSampler",
    "fedsearch_register_components",
    "select_parent",
]


class GeneticParams(ComponentParams):
    """Knobs of the genetic samplers."""

    population_size: Annotated[int, Field(ge=2)] = 10
    mutation_prob: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    conditional_mutation_prob: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    """Chance that a conditional param (present only in some trials) is redrawn, not inherited."""


class NSGA2(Sampler):
    """NSGA-II (Optuna's) that also evolves conditional params: the default search.

    Params outside the space every trial shares (a family's widths, a
    quantizer's bits) are inherited from the parent most like the child,
    instead of drawn at random as stock Optuna does.
    """

    name = "nsga2"
    description = "NSGA-II genetic search, conditional-aware (Optuna)"
    Params = GeneticParams

    def create(self, *, seed: int | None) -> optuna.samplers.BaseSampler:
        """A ``ConditionalNSGAIISampler`` with the configured population."""
        params: GeneticParams = self.params
        return ConditionalNSGAIISampler(
            population_size=params.population_size,
            mutation_prob=params.mutation_prob,
            conditional_mutation_prob=params.conditional_mutation_prob,
            seed=seed,
        )


class NSGA3(Sampler):
    """NSGA-III (Optuna's, reference-point based), conditional-aware like ``nsga2``."""

    name = "nsga3"
    description = "NSGA-III genetic search, conditional-aware (Optuna)"
    Params = GeneticParams

    def create(self, *, seed: int | None) -> optuna.samplers.BaseSampler:
        """A ``ConditionalNSGAIIISampler`` with the configured population."""
        params: GeneticParams = self.params
        return ConditionalNSGAIIISampler(
            population_size=params.population_size,
            mutation_prob=params.mutation_prob,
            conditional_mutation_prob=params.conditional_mutation_prob,
            seed=seed,
        )


class StartupParams(ComponentParams):
    """Knobs of the model-based samplers."""

    n_startup_trials: Annotated[int, Field(ge=0)] = 10


class TPE(Sampler):
    """Optuna's multi-objective Tree-structured Parzen Estimator (multivariate, grouped)."""

    name = "tpe"
    uses_history = True
    description = "Tree-structured Parzen Estimator (Optuna)"
    Params = StartupParams

    def create(self, *, seed: int | None) -> optuna.samplers.BaseSampler:
        """A ``TPESampler``; ``group`` lets it model conditional params jointly."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                n_startup_trials=self.params.n_startup_trials,
                multivariate=True,
                group=True,
                seed=seed,
            )


class GP(Sampler):
    """Optuna's Gaussian-process Bayesian optimisation (conditional params drawn at random)."""

    name = "gp"
    uses_history = True
    description = "Gaussian-process Bayesian optimisation (Optuna)"
    Params = StartupParams

    def create(self, *, seed: int | None) -> optuna.samplers.BaseSampler:
        """A ``GPSampler``."""
        return optuna.samplers.GPSampler(
            n_startup_trials=self.params.n_startup_trials,
            seed=seed,
            warn_independent_sampling=False,
        )


class Random(Sampler):
    """Uniform random search: the baseline every other sampler must beat."""

    name = "random"
    description = "uniform random search (Optuna)"

    def create(self, *, seed: int | None) -> optuna.samplers.BaseSampler:
        """A ``RandomSampler``."""
        return optuna.samplers.RandomSampler(seed=seed)


class EvolutionParams(ComponentParams):
    """Knobs of regularized evolution."""

    population_size: Annotated[int, Field(ge=2)] = 10
    sample_size: Annotated[int, Field(ge=1)] = 3


class RegularizedEvolution(Sampler):
    """Regularized (ageing) evolution, Real et al. 2019: tournament, mutate one, oldest dies."""

    name = "evolution"
    description = "regularized evolution (Real et al. 2019), multi-objective tournaments"
    Params = EvolutionParams

    def create(self, *, seed: int | None) -> optuna.samplers.BaseSampler:
        """A ``RegularizedEvolutionSampler``."""
        params: EvolutionParams = self.params
        return RegularizedEvolutionSampler(
            population_size=params.population_size,
            sample_size=min(params.sample_size, params.population_size),
            seed=seed,
        )


class RLControllerParams(ComponentParams):
    """Knobs of the RL controller."""

    learning_rate: Annotated[float, Field(gt=0.0)] = 1.0
    bins: Annotated[int, Field(ge=2)] = 8
    """Actions of a numeric param (its values, when fewer)."""
    baseline_decay: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.8


class RLController(Sampler):
    """A policy over categorical and discretised params trained with REINFORCE on the
    hypervolume each trial added (after Zoph & Le 2017's controller, multi-objective)."""

    name = "rl_controller"
    description = "REINFORCE controller, hypervolume-improvement reward"
    Params = RLControllerParams
    uses_history = True

    def create(self, *, seed: int | None) -> optuna.samplers.BaseSampler:
        """An ``RLControllerSampler``."""
        params: RLControllerParams = self.params  # type: ignore[assignment]
        return RLControllerSampler(
            learning_rate=params.learning_rate,
            bins=params.bins,
            baseline_decay=params.baseline_decay,
            seed=seed,
        )


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the samplers."""
    for sampler in (NSGA2, NSGA3, TPE, GP, Random, RegularizedEvolution, RLController):
        register.sampler(sampler)
