"""Search strategies from Optuna: NSGA-II (default), TPE, random."""

from __future__ import annotations

from typing import Annotated

import optuna
from pydantic import Field

from fedsearch import ComponentParams, ConstraintsFunc, Registrar, Sampler, hookimpl


class NSGA2Params(ComponentParams):
    """Knobs of NSGA-II."""

    population_size: Annotated[int, Field(ge=2)] = 20
    mutation_prob: Annotated[float, Field(gt=0.0, le=1.0)] | None = None


class NSGA2(Sampler):
    """Optuna's NSGA-II: the default multi-objective genetic search."""

    name = "nsga2"
    description = "NSGA-II genetic search (Optuna)"
    Params = NSGA2Params

    def create(
        self, *, seed: int | None, constraints_func: ConstraintsFunc | None = None
    ) -> optuna.samplers.BaseSampler:
        """An ``NSGAIISampler`` with the configured population."""
        return optuna.samplers.NSGAIISampler(
            population_size=self.params.population_size,
            mutation_prob=self.params.mutation_prob,
            seed=seed,
            constraints_func=constraints_func,
        )


class TPEParams(ComponentParams):
    """Knobs of TPE."""

    n_startup_trials: Annotated[int, Field(ge=0)] = 10


class TPE(Sampler):
    """Optuna's multi-objective Tree-structured Parzen Estimator."""

    name = "tpe"
    description = "Tree-structured Parzen Estimator (Optuna)"
    Params = TPEParams

    def create(
        self, *, seed: int | None, constraints_func: ConstraintsFunc | None = None
    ) -> optuna.samplers.BaseSampler:
        """A ``TPESampler``."""
        return optuna.samplers.TPESampler(
            n_startup_trials=self.params.n_startup_trials,
            seed=seed,
            constraints_func=constraints_func,
        )


class Random(Sampler):
    """Uniform random search: the baseline every other sampler must beat."""

    name = "random"
    description = "uniform random search (Optuna)"

    def create(
        self, *, seed: int | None, constraints_func: ConstraintsFunc | None = None
    ) -> optuna.samplers.BaseSampler:
        """A ``RandomSampler`` (constraints do not steer it)."""
        return optuna.samplers.RandomSampler(seed=seed)


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the Optuna samplers."""
    register.sampler(NSGA2)
    register.sampler(TPE)
    register.sampler(Random)
