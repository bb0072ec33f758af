"""Peak memory of a federation with many clients: 1000 MNIST clients, C = 0.01.

Run from the repository root (MNIST in ``--data`` or $FEDSEARCH_DATA_DIR/mnist):

    python benchmarks/memory_clients.py --data ../shared/data --rounds 5

Clients hold index arrays only: the examples stay in one shared tensor and the
model object is reused, so memory must not grow with the clients that exist.
Prints the peak resident set size of this process (``ru_maxrss``) after the
run, with the baseline after loading the data, as ``peak_rss_mib=<value>``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch
from _federation import fedavg_run

from fedsearch import get_registry
from fedsearch.config import FederationConfig
from fedsearch.federated import prepare_federated_data, run_federated


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder with the MNIST files")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--architecture", default="mnist_2nn")
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = get_registry()
    splits = registry.create("dataset", "mnist", {"root": args.data}).load()
    data = prepare_federated_data(
        splits,
        val_fraction=0.15,
        partitioner=registry.create("partitioner", "iid"),
        num_clients=args.clients,
        seed=0,
    )
    del splits
    loaded = peak_rss_mib()
    federation = FederationConfig(
        num_clients=args.clients,
        rounds=args.rounds,
        fraction=args.fraction,
        local_epochs=1,
        batch_size=10,
        learning_rate=0.1,
    )
    run = fedavg_run(data, federation)
    torch.manual_seed(0)
    model = registry.create("architecture", args.architecture).build(data.input_shape, 10)
    started = time.perf_counter()
    result = run_federated(model, run)
    print(f"clients={args.clients} fraction={args.fraction} rounds={args.rounds}")
    print(f"val_accuracy={result.history[-1].val_accuracy:.4f}")
    print(f"wall_s={time.perf_counter() - started:.1f}")
    print(f"rss_after_loading_mib={loaded:.0f}")
    print(f"peak_rss_mib={peak_rss_mib():.0f}")


if __name__ == "__main__":
    main()
