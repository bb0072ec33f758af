"""Memory does not grow with the clients that exist: 1000 MNIST clients, C = 0.01."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
PEAK_RSS_LIMIT_MIB = 1536


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="shared MNIST not present")
def test_a_thousand_mnist_clients_fit_in_one_and_a_half_gigabytes():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "memory_clients.py"),
            "--data",
            str(SHARED_DATA),
            "--clients",
            "1000",
            "--fraction",
            "0.01",
            "--rounds",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    figures = dict(line.split("=", 1) for line in completed.stdout.split() if "=" in line)
    assert figures["clients"] == "1000"
    assert 0.0 < float(figures["val_accuracy"]) <= 1.0
    assert float(figures["peak_rss_mib"]) <= PEAK_RSS_LIMIT_MIB
