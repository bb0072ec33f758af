"""Pareto ranking of a few points (all objectives minimised): non-dominated rank, then
crowding distance or hypervolume contribution within each rank.

Optuna computes the same quantities in private modules only
(``optuna.study._multi_objective``, ``optuna.samplers._nsgaii``), so the
sorting and the crowding distance are written out here (a rung holds tens of
points, so the quadratic sort is cheap); the hypervolume itself is Optuna's.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from optuna._hypervolume import compute_hypervolume

REFERENCE_MARGIN = 0.1
"""The hypervolume reference point lies this far beyond the worst point (normalised units)."""


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` is no worse than ``b`` everywhere and better somewhere."""
    return bool(np.all(a <= b) and np.any(a < b))


def non_dominated_ranks(values: np.ndarray) -> np.ndarray:
    """Rank 0 for the non-dominated points, 1 for those dominated only by rank 0, ..."""
    count = len(values)
    ranks = np.full(count, -1)
    remaining = set(range(count))
    rank = 0
    while remaining:
        front = [
            i for i in remaining if not any(dominates(values[j], values[i]) for j in remaining)
        ]
        ranks[front] = rank
        remaining -= set(front)
        rank += 1
    return ranks


def _normalised(values: np.ndarray) -> np.ndarray:
    low, high = values.min(axis=0), values.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return (values - low) / span


def crowding_distances(values: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point among ``values`` (boundaries: infinite).

    An objective on which every point is equal separates nobody and adds nothing.
    """
    count, objectives = values.shape
    distances = np.zeros(count)
    if count <= 2:
        return np.full(count, np.inf)
    scaled = _normalised(values)
    for m in range(objectives):
        if np.ptp(values[:, m]) == 0:
            continue
        order = np.argsort(scaled[:, m], kind="stable")
        distances[order[0]] = distances[order[-1]] = np.inf
        gaps = scaled[order[2:], m] - scaled[order[:-2], m]
        distances[order[1:-1]] += gaps
    return distances


def hypervolume_contributions(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """What each point adds to the hypervolume of ``values`` against ``reference``."""
    total = float(compute_hypervolume(values, reference))
    return np.array(
        [
            total - float(compute_hypervolume(np.delete(values, i, axis=0), reference))
            if len(values) > 1
            else total
            for i in range(len(values))
        ]
    )


def rung_order(
    values: np.ndarray, tie_break: Literal["crowding", "hypervolume"]
) -> tuple[np.ndarray, np.ndarray]:
    """Non-dominated rank of every point, and its secondary score within its rank (larger first).

    Args:
        values: One row per point, every objective minimised.
        tie_break: ``crowding`` (crowding distance) or ``hypervolume`` (contribution to
            the rank's hypervolume, in objectives normalised over all points).
    """
    ranks = non_dominated_ranks(values)
    secondary = np.zeros(len(values))
    scaled = _normalised(values)
    reference = np.full(values.shape[1], 1.0 + REFERENCE_MARGIN)
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        if tie_break == "crowding":
            secondary[members] = crowding_distances(values[members])
        else:
            secondary[members] = hypervolume_contributions(scaled[members], reference)
    return ranks, secondary
