"""Per-round wall clock for the throughput benchmark: start-up, warm-up round, steady rounds.

A runner ticks the clock when its first round starts and whenever a round
ends. Start-up is everything before the first round (for Flower: its
simulation engine and apps starting), the first round is the warm-up (first
autograd calls, worker processes or actors loading the client code), and the
time per round is the mean of the rounds after it; the tail is what follows
the last round (shutting an engine down).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field


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
