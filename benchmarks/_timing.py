"""Per-round wall clock for the throughput benchmark: start-up, warm-up round, steady rounds.

A runner ticks the clock when its first round starts and whenever a round
ends. Start-up is everything before the first round (for Flower: its
simulation engine and apps starting), the first round is the warm-up (first
autograd calls, worker processes or actors loading the client code), and the
time per round is the mean of the rounds after it; the tail is what follows
the last round (shutting an engine down).

``interleaved`` runs every runner once per repetition in a rotating order and
keeps each run's clock; ``median_spread`` formats a runner's repetitions.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class RoundClock:
    """Time stamps of one runner's run, from ``perf_counter``."""

    started: float = field(default_factory=time.perf_counter)
    marks: list[float] = field(default_factory=list)
    ended: float | None = None

    def tick(self) -> None:
        """The first round starts (first call) or a round ends (every later call)."""
        self.marks.append(time.perf_counter())

    def stop(self) -> None:
        """The runner returned."""
        self.ended = time.perf_counter()

    @property
    def total_s(self) -> float:
        """Wall seconds from the runner's call to its return."""
        return (self.ended or time.perf_counter()) - self.started

    @property
    def startup_s(self) -> float:
        """Seconds before the first round started."""
        return self.marks[0] - self.started

    @property
    def rounds_s(self) -> list[float]:
        """Seconds of each round."""
        return [end - start for start, end in zip(self.marks, self.marks[1:], strict=False)]

    @property
    def warmup_s(self) -> float:
        """Seconds of the first round."""
        return self.rounds_s[0]

    @property
    def per_round_s(self) -> float:
        """Mean seconds of the rounds after the first (NaN with a single round)."""
        steady = self.rounds_s[1:]
        return statistics.fmean(steady) if steady else float("nan")

    @property
    def tail_s(self) -> float:
        """Seconds after the last round until the runner returned."""
        return self.total_s - (self.marks[-1] - self.started)


def clocked(run: Callable[[RoundClock], T]) -> tuple[RoundClock, T]:
    """One run of a runner with a fresh clock: the stopped clock and the runner's result."""
    clock = RoundClock()
    result = run(clock)
    clock.stop()
    return clock, result


def interleaved(
    table: dict[str, Callable[[RoundClock], T]], repeats: int, name: str
) -> tuple[dict[str, list[RoundClock]], dict[str, T]]:
    """Interleaved repetitions: every runner once per repetition, in a rotating order,
    so load that comes and goes on a shared machine hits every runner alike.

    Returns every run's clock by runner label, and each runner's last result.
    """
    clocks: dict[str, list[RoundClock]] = {label: [] for label in table}
    results: dict[str, T] = {}
    labels = list(table)
    for repeat in range(repeats):
        shift = repeat % len(labels)
        for label in labels[shift:] + labels[:shift]:
            clock, results[label] = clocked(table[label])
            clocks[label].append(clock)
            print(
                f"    {name} #{repeat + 1} {label}: {clock.total_s:.2f} s (start-up "
                f"{clock.startup_s:.3f}, round 1 {clock.warmup_s:.3f}, then "
                f"{clock.per_round_s:.3f} a round)",
                flush=True,
            )
    return clocks, results


def median_spread(values: list[float], digits: int = 2, unit: str = "") -> str:
    """``median (min-max)`` of a runner's repetitions, the unit after the median."""
    low, high = min(values), max(values)
    return f"{statistics.median(values):.{digits}f}{unit} ({low:.{digits}f}-{high:.{digits}f})"


def load_average() -> str:
    """The 1-minute load average, or "?" where the OS has none."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"
