"""Server aggregation: FedAvg (McMahan et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fedsearch import ClientUpdate, Registrar, ServerRound, Strategy, Weights, hookimpl


def weighted_mean_delta(updates: Sequence[ClientUpdate]) -> Weights:
    """Mean of the client deltas weighted by each client's number of examples."""
    total = sum(update.num_examples for update in updates)
    coefficients = torch.tensor([update.num_examples / total for update in updates])
    names = updates[0].delta.keys()
    return {
        name: torch.einsum(
            "k,k...->...",
            coefficients.to(updates[0].delta[name].dtype),
            torch.stack([update.delta[name] for update in updates]),
        )
        for name in names
    }


class FedAvg(Strategy):
    """Federated averaging: the example-weighted mean of the client models.

    Clients send deltas against the weights they received, so the new global
    weights are ``weights + sum_k (n_k / n) * delta_k``.
    """

    name = "fedavg"
    description = "federated averaging (McMahan et al. 2017)"

    def aggregate(
        self, weights: Weights, updates: Sequence[ClientUpdate], server_round: ServerRound
    ) -> Weights:
        """Add the example-weighted mean delta to the global weights."""
        mean_delta = weighted_mean_delta(updates)
        return {name: weights[name] + mean_delta[name] for name in weights}


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register FedAvg."""
    register.strategy(FedAvg)
