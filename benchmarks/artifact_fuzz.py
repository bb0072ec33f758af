"""How long the artifact loader takes on corrupted artifacts (issue 11: each load under 1 s).

Feeds the corruptions of ``tests/artifact/test_untrusted_artifacts.py`` (raw
bytes, and one header value rewritten with the CRC recomputed) to
``load_model`` and prints the count, median, 99th percentile and slowest load,
and which exceptions came out (only ArtifactError may).

    python benchmarks/artifact_fuzz.py [--examples 2000]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fedsearch import ArtifactError, load_model
from tests.artifact.test_untrusted_artifacts import (
    REGISTRY,
    header_corruptions,
    raw_corruptions,
)


def loads(strategy, examples: int) -> tuple[list[float], collections.Counter[str]]:
    """Load ``examples`` corruptions drawn from ``strategy``: the times and the outcomes."""
    times: list[float] = []
    outcomes: collections.Counter[str] = collections.Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same corruptions on every run: the counts reproduce
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def measure(data: bytes) -> None:
        started = time.perf_counter()
        try:
            load_model(data, REGISTRY)
            outcomes["loaded"] += 1
        except ArtifactError:
            outcomes["ArtifactError"] += 1
        except Exception as error:  # counted and shown: it must not happen
            outcomes[type(error).__name__] += 1
        times.append(time.perf_counter() - started)

    measure()
    return sorted(times), outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="corruptions of each kind")
    args = parser.parse_args()
    for name, strategy in (
        ("raw bytes", raw_corruptions()),
        ("header value", header_corruptions()),
    ):
        times, outcomes = loads(strategy, args.examples)
        print(
            f"{name}: {len(times)} loads, median {statistics.median(times) * 1e3:.2f} ms, "
            f"p99 {times[int(0.99 * (len(times) - 1))] * 1e3:.2f} ms, "
            f"max {times[-1] * 1e3:.1f} ms; outcomes {dict(outcomes)}"
        )


if __name__ == "__main__":
    main()
