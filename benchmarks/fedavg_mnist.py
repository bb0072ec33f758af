"""Reproduce McMahan et al. 2017 (FedAvg) on MNIST: rounds to a target test accuracy.

Run from the repository root (MNIST IDX files in ``--data`` or $FEDSEARCH_DATA_DIR/mnist):

    python benchmarks/fedavg_mnist.py                      # all three experiments
    python benchmarks/fedavg_mnist.py --only cnn_iid --max-rounds 25

Experiments (100 clients of 600 examples, C = 0.1, i.e. 10 clients a round):

| name           | model                       | E | B  | partition              | target | paper |
| cnn_iid        | CNN (fedavg_cnn, 1.66M)     | 5 | 10 | IID                    | 99%    | 20    |
| 2nn_iid        | 2NN (mnist_2nn, 199k)       | 1 | 10 | IID                    | 97%    | 87    |
| 2nn_pathological | 2NN                       | 1 | 10 | 2 label shards/client  | 97%    | 664   |

As in the paper, the whole 60000-example training set is partitioned and the
accuracy is that of the global model on the 10000 test examples after each
round; a run stops at the target or at ``--max-rounds``. The paper tuned the
client learning rate per experiment on a grid; the rates used here are in
``EXPERIMENTS`` (plain SGD, no momentum or decay, pixels scaled to [0, 1]).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass

import torch
from _federation import clients_on_test_split, fedavg_run

from fedsearch import get_registry
from fedsearch.config import FederationConfig
from fedsearch.federated import FederatedData, RoundRecord, run_federated


@dataclass(frozen=True)
class Experiment:
    """One row of McMahan et al.'s tables."""

    architecture: str
    local_epochs: int
    batch_size: int
    partition: str
    learning_rate: float
    target: float
    paper_rounds: int


EXPERIMENTS = {
    # lr for the CNN from a three-point search (0.05, 0.1, 0.2): see benchmarks/RESULTS.md
    "cnn_iid": Experiment("fedavg_cnn", 5, 10, "iid", 0.2, 0.99, 20),
    "2nn_iid": Experiment("mnist_2nn", 1, 10, "iid", 0.1, 0.97, 87),
    "2nn_pathological": Experiment("mnist_2nn", 1, 10, "shards", 0.05, 0.97, 664),
}
NUM_CLIENTS = 100
FRACTION = 0.1


class TargetReached(Exception):
    """Raised from the round callback to stop a run at its target."""


def federated_mnist(partition: str, seed: int, data_root: str | None) -> FederatedData:
    """All of MNIST's training set dealt to 100 clients; evaluation on the test set."""
    registry = get_registry()
    splits = registry.create("dataset", "mnist", {"root": data_root}).load()
    return clients_on_test_split(
        splits, registry.create("partitioner", partition), NUM_CLIENTS, seed
    )


def run_experiment(
    name: str, max_rounds: int, seed: int, data_root: str | None, lr: float | None = None
) -> dict:
    """Train until the target test accuracy or ``max_rounds``; return what happened."""
    experiment = EXPERIMENTS[name]
    if lr is not None:
        experiment = dataclasses.replace(experiment, learning_rate=lr)
    registry = get_registry()
    data = federated_mnist(experiment.partition, seed, data_root)
    federation = FederationConfig(
        num_clients=NUM_CLIENTS,
        rounds=max_rounds,
        fraction=FRACTION,
        local_epochs=experiment.local_epochs,
        batch_size=experiment.batch_size,
        learning_rate=experiment.learning_rate,
    )
    run = fedavg_run(data, federation, seed)
    torch.manual_seed(seed)
    model = registry.create("architecture", experiment.architecture).build((1, 28, 28), 10)
    history: list[RoundRecord] = []
    started = time.perf_counter()

    def on_round(record: RoundRecord) -> None:
        history.append(record)
        elapsed = time.perf_counter() - started
        print(
            f"  [{name}] round {record.round:4d}  test accuracy {record.val_accuracy:.4f}  "
            f"loss {record.train_loss:.4f}  {elapsed:7.1f} s",
            flush=True,
        )
        if record.val_accuracy is not None and record.val_accuracy >= experiment.target:
            raise TargetReached

    try:
        run_federated(model, run, on_round=on_round)
        reached = None
    except TargetReached:
        reached = history[-1].round
    best = max(r.val_accuracy for r in history if r.val_accuracy is not None)
    return {
        "name": name,
        "experiment": experiment,
        "rounds_to_target": reached,
        "rounds_run": len(history),
        "best_accuracy": best,
        "wall_s": time.perf_counter() - started,
        "execution": history[-1].execution,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(EXPERIMENTS), default=list(EXPERIMENTS))
    parser.add_argument("--max-rounds", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="folder with the MNIST files")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--lr", type=float, default=None, help="override the learning rate")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [run_experiment(n, args.max_rounds, args.seed, args.data, args.lr) for n in args.only]
    print()
    print(
        "| experiment | model | E | B | lr | target | rounds (fedsearch) | rounds (paper) "
        "| best test acc | rounds run | wall s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in results:
        experiment: Experiment = result["experiment"]
        reached = result["rounds_to_target"]
        shown = str(reached) if reached is not None else f"not within {result['rounds_run']}"
        print(
            f"| {result['name']} | {experiment.architecture} | {experiment.local_epochs} | "
            f"{experiment.batch_size} | {experiment.learning_rate} | {experiment.target:.0%} | "
            f"{shown} | {experiment.paper_rounds} | {result['best_accuracy']:.4f} | "
            f"{result['rounds_run']} | {result['wall_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
