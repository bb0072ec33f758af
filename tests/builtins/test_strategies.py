"""Each strategy against an aggregate computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fedsearch import ClientUpdate, ServerRound

WEIGHTS = {"w": torch.tensor([1.0, -2.0])}
# example-weighted mean delta: 0.25 * [0.4, -0.8] + 0.75 * [0.0, 0.4] = [0.1, 0.1]
UPDATES = [
    ClientUpdate(0, 10, {"w": torch.tensor([0.4, -0.8])}),
    ClientUpdate(1, 30, {"w": torch.tensor([0.0, 0.4])}),
]
ROUND = ServerRound(0, 2, 1.0, np.random.default_rng(0))


def aggregate_twice(registry, name, params):
    strategy = registry.create("strategy", name, params)
    first = strategy.aggregate(WEIGHTS, UPDATES, ROUND)
    second = strategy.aggregate(first, UPDATES, ROUND)
    return first["w"].tolist(), second["w"].tolist()


def test_fedprox_aggregates_like_fedavg_and_asks_for_the_proximal_term(registry):
    strategy = registry.create("strategy", "fedprox", {"mu": 0.3})
    assert strategy.fit_config(ROUND) == {"proximal_mu": 0.3}
    new = strategy.aggregate(WEIGHTS, UPDATES, ROUND)
    assert new["w"].tolist() == pytest.approx([1.1, -1.9])


def test_fedavgm_accumulates_server_momentum(registry):
    first, second = aggregate_twice(registry, "fedavgm", {"server_lr": 0.5, "momentum": 0.9})
    # v1 = 0.1, w1 = w + 0.5 * 0.1; v2 = 0.9 * 0.1 + 0.1 = 0.19, w2 = w1 + 0.5 * 0.19
    assert first == pytest.approx([1.05, -1.95])
    assert second == pytest.approx([1.05 + 0.095, -1.95 + 0.095])


def adaptive_by_hand(kind, lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3):
    """Two rounds with delta = 0.1 in every coordinate, by the paper's formulas."""
    delta, m, v, w, out = 0.1, 0.0, tau**2, 0.0, []
    for _ in range(2):
        m = beta1 * m + (1 - beta1) * delta
        if kind == "fedadagrad":
            v = v + delta**2
        elif kind == "fedadam":
            v = beta2 * v + (1 - beta2) * delta**2
        else:
            v = v - (1 - beta2) * delta**2 * math.copysign(1.0, v - delta**2)
        w += lr * m / (math.sqrt(v) + tau)
        out.append(w)
    return out


@pytest.mark.parametrize("name", ["fedadagrad", "fedadam", "fedyogi"])
def test_adaptive_server_optimizers_follow_reddi_et_al(registry, name):
    params = {"server_lr": 0.1, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3}
    first, second = aggregate_twice(registry, name, params)
    step1, step2 = adaptive_by_hand(name)
    assert first == pytest.approx([1.0 + step1, -2.0 + step1], rel=1e-5)
    assert second == pytest.approx([1.0 + step2, -2.0 + step2], rel=1e-5)


def test_adaptive_strategies_differ_from_each_other(registry):
    seconds = {
        name: aggregate_twice(registry, name, {})[1]
        for name in ("fedadagrad", "fedadam", "fedyogi")
    }
    assert len({tuple(round(v, 6) for v in s) for s in seconds.values()}) == 3
