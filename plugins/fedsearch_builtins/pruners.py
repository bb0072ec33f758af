"""Multi-objective multi-fidelity pruning: asynchronous successive halving over rounds,
trials ranked by Pareto dominance (Optuna's own pruners take one objective)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from fedsearch import ComponentParams, Pruner, Registrar, RungPoint, hookimpl
from fedsearch_builtins._pareto_ranking import rung_order

__all__ = ["ParetoASHA", "fedsearch_register_components"]


class ParetoASHAParams(ComponentParams):
    """Knobs of Pareto successive halving."""

    reduction_factor: Annotated[int, Field(ge=2)] = 4
    """Rungs are ``min_rung * reduction_factor**k`` rounds; the best 1/reduction_factor go on.
    4 was chosen among 2, 3, 4, 5, 6 and 8 on held-out seeds of the search-quality
    benchmark (``benchmarks/RESULTS.md``, issue 19)."""
    min_rung: Annotated[int, Field(ge=1)] = 1
    """Round of the first rung."""
    min_trials: Annotated[int, Field(ge=1)] = 5
    """Trials (this one included) that must have reached a rung before it prunes anything."""
    tie_break: Literal["crowding", "hypervolume"] = "hypervolume"
    """Order within one non-dominated rank: hypervolume contribution or crowding distance."""


class ParetoASHA(Pruner):
    """Asynchronous successive halving (ASHA, Li et al. 2020) with a Pareto ranking.

    At each rung the trial's point (validation accuracy, artifact bytes,
    communication bytes so far; sizes on a log scale) is ranked among every
    point stored at that rung: by non-dominated rank (NSGA-II's sorting), then
    by crowding distance or hypervolume contribution within the rank (larger
    first), then by trial number (earlier first). The trial goes on when it is
    among the best ``ceil(n / reduction_factor)`` of the ``n`` points, else it
    stops. Nothing waits: a trial is judged against whoever reached the rung
    before it, as in ASHA.
    """

    name = "pareto_asha"
    description = "asynchronous successive halving over rounds, Pareto-ranked (ASHA + NSGA-II)"
    Params = ParetoASHAParams

    def rungs(self, num_rounds: int) -> tuple[int, ...]:
        """``min_rung * reduction_factor**k`` below ``num_rounds``."""
        params: ParetoASHAParams = self.params  # type: ignore[assignment]
        rungs = []
        rung = params.min_rung
        while rung < num_rounds:
            rungs.append(rung)
            rung *= params.reduction_factor
        return tuple(rungs)

    def decide(self, point: RungPoint, peers: Sequence[RungPoint]) -> str | None:
        """Stop unless the trial is among the best ``ceil(n / reduction_factor)`` at its rung."""
        params: ParetoASHAParams = self.params  # type: ignore[assignment]
        points = [*peers, point]
        if len(points) < params.min_trials:
            return None
        values = np.array([_minimised(p) for p in points])
        ranks, secondary = rung_order(values, params.tie_break)
        order = sorted(range(len(points)), key=lambda i: (ranks[i], -secondary[i], points[i].trial))
        kept = math.ceil(len(points) / params.reduction_factor)
        position = order.index(len(points) - 1)
        if position < kept:
            return None
        return (
            f"non-dominated rank {int(ranks[-1])}, place {position + 1} of {len(points)} trials "
            f"at round {point.round}; the best {kept} go on "
            f"(rank, then {params.tie_break}; reduction factor {params.reduction_factor})"
        )


def _minimised(point: RungPoint) -> list[float]:
    """(1 - accuracy, log10 model bytes, log10 comm bytes): every objective minimised."""
    return [
        1.0 - point.val_accuracy,
        math.log10(max(point.model_bytes, 1)),
        math.log10(max(point.comm_bytes, 1)),
    ]


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the pruners."""
    register.pruner(ParetoASHA)
