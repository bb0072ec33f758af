"""The Pareto ASHA pruner: rungs, ranking, who goes on."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fedsearch_builtins._pareto_ranking import (
    crowding_distances,
    hypervolume_contributions,
    non_dominated_ranks,
)
from fedsearch_builtins.pruners import ParetoASHA

from fedsearch import Pruner, RungPoint
from fedsearch.components import COMPONENT_KINDS
from tests._console import fedsearch


def point(trial, accuracy, model=1000, comm=10_000, round_=1):
    return RungPoint(trial, round_, accuracy, model, comm)


def test_registered_as_a_pruner(registry):
    assert registry.names("pruner") == ["pareto_asha"]
    assert registry.get("pruner", "pareto_asha").plugin == "builtin.pruners"


@pytest.mark.parametrize(
    ("params", "rounds", "expected"),
    [
        ({}, 10, (1, 4)),
        ({"reduction_factor": 3}, 10, (1, 3, 9)),
        ({"reduction_factor": 3}, 9, (1, 3)),
        ({}, 4, (1,)),
        ({"reduction_factor": 2, "min_rung": 2}, 20, (2, 4, 8, 16)),
        ({"min_rung": 5}, 5, ()),
    ],
)
def test_rungs_grow_by_the_reduction_factor_below_the_last_round(params, rounds, expected):
    assert ParetoASHA(ParetoASHA.Params(**params)).rungs(rounds) == expected


def test_nothing_is_pruned_before_min_trials_reached_the_rung():
    pruner = ParetoASHA(ParetoASHA.Params(min_trials=4))
    peers = [point(0, 0.9), point(1, 0.95)]
    assert pruner.decide(point(2, 0.1), peers) is None  # 3 < 4 points
    reason = pruner.decide(point(3, 0.1), [*peers, point(2, 0.5)])
    assert reason is not None and "rank 3" in reason and "4 trials" in reason


def test_a_dominated_trial_stops_and_the_best_third_goes_on():
    pruner = ParetoASHA(ParetoASHA.Params(min_trials=3))
    peers = [point(i, 0.5 + 0.05 * i, model=1000 - 10 * i, comm=10_000) for i in range(5)]
    # the new trial dominates every peer: more accurate, smaller, same traffic
    assert pruner.decide(point(9, 0.99, model=100), peers) is None
    # dominated by peer 4 (better everywhere): rank 1 of 6, the best ceil(6/3) = 2 go on
    reason = pruner.decide(point(9, 0.6, model=1000, comm=20_000), peers)
    assert reason is not None and "the best 2 go on" in reason


def test_within_a_rank_a_crowded_point_stops_before_the_extremes():
    pruner = ParetoASHA(ParetoASHA.Params(min_trials=3, reduction_factor=2, tie_break="crowding"))
    # a front along accuracy vs model bytes; the newcomer sits between two neighbours
    peers = [point(0, 0.5, model=100), point(1, 0.9, model=1000), point(2, 0.95, model=2000)]
    assert pruner.decide(point(3, 0.91, model=1050), peers) is not None
    assert pruner.decide(point(3, 0.4, model=50), peers) is None  # a new extreme


def test_hypervolume_tie_break_keeps_the_point_that_adds_most():
    pruner = ParetoASHA(
        ParetoASHA.Params(min_trials=3, reduction_factor=2, tie_break="hypervolume")
    )
    peers = [point(0, 0.5, model=100), point(1, 0.9, model=1000), point(2, 0.95, model=2000)]
    assert pruner.decide(point(3, 0.91, model=1050), peers) is not None
    assert "hypervolume" in pruner.decide(point(3, 0.91, model=1050), peers)


def brute_ranks(values):
    ranks = np.full(len(values), -1)
    left = list(range(len(values)))
    rank = 0
    while left:
        front = [
            i
            for i in left
            if not any(
                np.all(values[j] <= values[i]) and np.any(values[j] < values[i]) for j in left
            )
        ]
        ranks[front] = rank
        left = [i for i in left if i not in front]
        rank += 1
    return ranks


def test_ranks_match_peeling_fronts_by_hand():
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = rng.integers(0, 5, size=(12, 3)).astype(float)
        assert list(non_dominated_ranks(values)) == list(brute_ranks(values))


def test_crowding_distance_of_a_line():
    values = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    distances = crowding_distances(values)
    assert math.isinf(distances[0]) and math.isinf(distances[3])
    # normalised: (3-0)/4 on each objective, twice
    assert distances[1] == pytest.approx(1.5) and distances[2] == pytest.approx(1.5)


def test_hypervolume_contribution_of_a_box_corner():
    values = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    contributions = hypervolume_contributions(values, np.array([2.0, 2.0]))
    # the middle point alone adds the 0.5 x 0.5 square
    assert contributions[2] == pytest.approx(0.25)
    assert all(c >= 0 for c in contributions)


def test_listed_by_fedsearch_plugins():
    listing = json.loads(fedsearch("plugins", "--json").stdout)
    by_plugin = {entry["name"]: entry["components"] for entry in listing}
    assert by_plugin["builtin.pruners"] == {"pruner": ["pareto_asha"]}
    assert "pruner" in COMPONENT_KINDS and COMPONENT_KINDS["pruner"] is Pruner
