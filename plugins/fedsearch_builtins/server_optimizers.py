"""FedProx, FedAvgM and the adaptive server optimizers of Reddi et al. 2021.

Every strategy here starts from the example-weighted mean client delta
``delta = sum_k (n_k / n) * (w_k - w)`` (FedAvg's update):

- FedProx (Li et al. 2020): FedAvg aggregation; clients add ``mu/2 ||w - w_global||^2``
  to their local loss (sent to them through ``fit_config``).
- FedAvgM (Hsu et al. 2019): ``v = momentum * v + delta``, ``w = w + server_lr * v``.
- FedAdagrad / FedAdam / FedYogi (Reddi et al. 2021, Algorithm 2):
  ``m = beta1 * m + (1 - beta1) * delta`` and

  - Adagrad: ``v = v + delta^2``
  - Adam: ``v = beta2 * v + (1 - beta2) * delta^2``
  - Yogi: ``v = v - (1 - beta2) * delta^2 * sign(v - delta^2)``

  then ``w = w + server_lr * m / (sqrt(v) + tau)``, with ``v`` starting at ``tau^2``
  and ``m`` at 0, no bias correction (as in the paper).

Only floating-point tensors get the server optimizer; others (counters) take
the plain FedAvg update.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

import torch
from pydantic import Field

from fedsearch import (
    ClientUpdate,
    ComponentParams,
    Registrar,
    ServerRound,
    Strategy,
    Weights,
    hookimpl,
)
from fedsearch_builtins.strategies import FedAvg, weighted_mean_delta


def optimizer_step(
    weights: Weights,
    updates: Sequence[ClientUpdate],
    step: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor],
) -> Weights:
    """``weights`` moved by a server optimizer along the mean client delta.

    Each floating-point tensor gets ``step(name, tensor, delta)`` added (the
    optimizer updates its state as it goes, in the weights' order); the others
    (counters) get the plain FedAvg update ``delta``.
    """
    delta = weighted_mean_delta(updates)
    new = {}
    for name, tensor in weights.items():
        change = step(name, tensor, delta[name]) if tensor.is_floating_point() else delta[name]
        new[name] = tensor + change
    return new


class FedProxParams(ComponentParams):
    """Knobs of FedProx."""

    mu: Annotated[float, Field(ge=0.0)] = 0.01
    """Weight of the proximal term in every client's local loss."""


class FedProx(FedAvg):
    """FedProx (Li et al. 2020): FedAvg aggregation, proximal term in local training."""

    name = "fedprox"
    description = "FedProx: FedAvg with a proximal local loss (mu)"
    Params = FedProxParams

    def fit_config(self, server_round: ServerRound) -> dict[str, float]:
        """Ask the clients to add ``mu / 2 * ||w - w_global||^2`` to their loss."""
        return {"proximal_mu": self.params.mu}


class FedAvgMParams(ComponentParams):
    """Knobs of FedAvgM."""

    server_lr: Annotated[float, Field(gt=0.0)] = 1.0
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9


class FedAvgM(Strategy):
    """FedAvg with server momentum (Hsu et al. 2019)."""

    name = "fedavgm"
    description = "FedAvgM: FedAvg with server momentum"
    Params = FedAvgMParams

    def __init__(self, params: ComponentParams | None = None) -> None:
        super().__init__(params)
        self.velocity: Weights = {}

    def aggregate(
        self, weights: Weights, updates: Sequence[ClientUpdate], server_round: ServerRound
    ) -> Weights:
        """``v = momentum * v + delta``; ``w = w + server_lr * v``."""
        return optimizer_step(weights, updates, self._step)

    def _step(self, name: str, tensor: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        previous = self.velocity.get(name, torch.zeros_like(tensor))
        self.velocity[name] = self.params.momentum * previous + delta
        return self.params.server_lr * self.velocity[name]


class AdaptiveParams(ComponentParams):
    """Knobs of the adaptive server optimizers (Reddi et al. 2021)."""

    server_lr: Annotated[float, Field(gt=0.0)] = 0.01
    beta1: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    beta2: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.99
    tau: Annotated[float, Field(gt=0.0)] = 1e-3
    """Adaptivity: added to ``sqrt(v)``; ``v`` starts at ``tau ** 2``."""


class _AdaptiveStrategy(Strategy):
    """Shared first-moment, update and state handling; subclasses set ``second_moment``."""

    Params = AdaptiveParams

    def __init__(self, params: ComponentParams | None = None) -> None:
        super().__init__(params)
        self.first: Weights = {}
        self.second: Weights = {}

    def second_moment(self, previous: torch.Tensor, squared: torch.Tensor) -> torch.Tensor:
        """The new ``v`` from the previous one and ``delta ** 2``."""
        raise NotImplementedError

    def aggregate(
        self, weights: Weights, updates: Sequence[ClientUpdate], server_round: ServerRound
    ) -> Weights:
        """Adaptive step along the mean client delta."""
        return optimizer_step(weights, updates, self._step)

    def _step(self, name: str, tensor: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        params: AdaptiveParams = self.params
        first = self.first.get(name, torch.zeros_like(tensor))
        second = self.second.get(name, torch.full_like(tensor, params.tau**2))
        self.first[name] = params.beta1 * first + (1 - params.beta1) * delta
        self.second[name] = self.second_moment(second, delta**2)
        step = self.first[name] / (self.second[name].sqrt() + params.tau)
        return params.server_lr * step


class FedAdagrad(_AdaptiveStrategy):
    """FedAdagrad (Reddi et al. 2021): ``v = v + delta^2``."""

    name = "fedadagrad"
    description = "FedAdagrad server optimizer (Reddi et al. 2021)"

    def second_moment(self, previous: torch.Tensor, squared: torch.Tensor) -> torch.Tensor:
        """Accumulate squared deltas."""
        return previous + squared


class FedAdam(_AdaptiveStrategy):
    """FedAdam (Reddi et al. 2021): ``v = beta2 * v + (1 - beta2) * delta^2``."""

    name = "fedadam"
    description = "FedAdam server optimizer (Reddi et al. 2021)"

    def second_moment(self, previous: torch.Tensor, squared: torch.Tensor) -> torch.Tensor:
        """Exponential moving average of squared deltas."""
        beta2 = self.params.beta2
        return beta2 * previous + (1 - beta2) * squared


class FedYogi(_AdaptiveStrategy):
    """FedYogi (Reddi et al. 2021): ``v = v - (1 - beta2) * delta^2 * sign(v - delta^2)``."""

    name = "fedyogi"
    description = "FedYogi server optimizer (Reddi et al. 2021)"

    def second_moment(self, previous: torch.Tensor, squared: torch.Tensor) -> torch.Tensor:
        """Additive, sign-controlled update of ``v``."""
        return previous - (1 - self.params.beta2) * squared * torch.sign(previous - squared)


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register FedProx, FedAvgM, FedAdagrad, FedAdam and FedYogi."""
    for strategy in (FedProx, FedAvgM, FedAdagrad, FedAdam, FedYogi):
        register.strategy(strategy)
