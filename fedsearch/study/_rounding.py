"""Sampled values rounded to their step: the dashboard shows ``0.6``, not ``0.6000000000000001``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from optuna.distributions import BaseDistribution, FloatDistribution


def step_decimals(distribution: FloatDistribution) -> int:
    """Decimal places of the grid ``low + k * step`` (``0.3``, step ``0.05``: 2)."""
    assert distribution.step is not None
    places = [
        max(0, -int(Decimal(repr(number)).normalize().as_tuple().exponent))
        for number in (distribution.low, distribution.step)
    ]
    return max(places)


def round_to_step(value: Any, distribution: BaseDistribution) -> Any:
    """``value`` rounded to the decimals of its distribution's step (others unchanged).

    Samplers compute a stepped value as ``low + k * step`` in floating point;
    rounding to the step's decimals gives the grid point the user wrote, which
    Optuna accepts as the same point of the distribution.
    """
    if not isinstance(distribution, FloatDistribution) or distribution.step is None:
        return value
    rounded = round(float(value), step_decimals(distribution))
    return min(max(rounded, distribution.low), distribution.high)
