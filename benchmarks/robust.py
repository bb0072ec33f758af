"""Malicious clients on MNIST: sign flipping against FedAvg and each robust rule; a backdoor
with and without norm bounding.

Run from the repository root (MNIST IDX files in ``--data`` or $FEDSEARCH_DATA_DIR/mnist):

    nice -n 10 python benchmarks/robust.py --seeds 0 1 2

Setting (small enough for a shared 2-core machine): 20 IID clients holding 300
MNIST training images each (6,000 of the 57,000 left after the 5% validation
split), every client in every round, the 2NN of McMahan et al. (784-200-200-10),
1 local epoch, batch 32, client learning rate 0.1, 20 rounds, float32 payloads.

- Sign flipping: 20% of the clients (4 of 20, drawn from the seed) send
  ``-scale`` times their update. Krum and Multi-Krum assume ``f = 0.2 n``;
  the trimmed mean drops ``0.2 n`` values at each end; norm bounding clips
  to the median honest update norm of the attack-free FedAvg run's first round
  (measured on the clients, chosen without the test split).
- Backdoor: 2 of 20 clients stamp a 4x4 bright square on half of their
  images, relabel them 0 and boost their update 5x; the attack success rate is
  the share of stamped test images of other classes classified 0.
  FedAvg against norm bounding (bound as above, weak-DP noise 0.001).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import numpy as np
import torch
from _federation import VAL_FRACTION, mean_std, spread

from fedsearch import get_registry
from fedsearch.config import FederationConfig
from fedsearch.federated import (
    FederatedData,
    FederatedRun,
    accuracy,
    prepare_federated_data,
    run_federated,
)

CLIENTS = 20
PER_CLIENT = 300
ROBUST = ("krum", "multi_krum", "median", "trimmed_mean", "norm_bounding")


def federated_mnist(data_root: str | None, seed: int) -> FederatedData:
    """MNIST, 5% validation carved out, 20 IID clients of 300 images each."""
    registry = get_registry()
    splits = registry.create("dataset", "mnist", {"root": data_root}).load()
    data = prepare_federated_data(
        splits,
        val_fraction=VAL_FRACTION,
        partitioner=registry.create("partitioner", "iid"),
        num_clients=CLIENTS,
        seed=seed,
    )
    return dataclasses.replace(
        data, client_indices=[indices[:PER_CLIENT] for indices in data.client_indices]
    )


def one_run(
    data: FederatedData,
    strategy: tuple[str, dict[str, Any]],
    middleware: list[tuple[str, dict[str, Any]]],
    seed: int,
    rounds: int,
) -> dict[str, float]:
    """Train the 2NN; return validation and test accuracy and the middleware's test report."""
    registry = get_registry()
    federation = FederationConfig(
        num_clients=CLIENTS,
        rounds=rounds,
        fraction=1.0,
        local_epochs=1,
        batch_size=32,
        learning_rate=0.1,
        eval_every=rounds,
        execution="sequential",
    )
    attacks = tuple(registry.create("middleware", name, params) for name, params in middleware)
    run = FederatedRun(
        data=data,
        federation=federation,
        strategy=registry.create("strategy", *strategy),
        downlink_codec=registry.create("codec", "float32"),
        uplink_codec=registry.create("codec", "float32"),
        seed=seed,
        middleware=attacks,
    )
    model = registry.create("architecture", "mnist_2nn").build((1, 28, 28), 10)
    result = run_federated(model, run)
    model.load_state_dict(result.weights)
    model.eval()
    figures = {
        "val_accuracy": accuracy(model, data.val_inputs, data.val_labels),
        "test_accuracy": accuracy(model, data.test_inputs, data.test_labels),
    }
    for attack in attacks:
        figures |= attack.test_report(model, data.test_inputs, data.test_labels)
    return figures


def honest_norm(data: FederatedData, seed: int) -> float:
    """Median L2 norm of the clients' first-round updates (attack-free, float32)."""
    norms: list[float] = []

    class Probe:
        """FedAvg that records the norms of the updates it aggregates."""

        def __init__(self) -> None:
            self.inner = get_registry().create("strategy", "fedavg")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def aggregate(self, weights, updates, server_round):
            for update in updates:
                squares = sum(float(t.double().pow(2).sum()) for t in update.delta.values())
                norms.append(squares**0.5)
            return self.inner.aggregate(weights, updates, server_round)

    registry = get_registry()
    federation = FederationConfig(
        num_clients=CLIENTS, rounds=1, fraction=1.0, batch_size=32, learning_rate=0.1
    )
    run = FederatedRun(
        data=data,
        federation=federation,
        strategy=Probe(),  # type: ignore[arg-type]
        downlink_codec=registry.create("codec", "float32"),
        uplink_codec=registry.create("codec", "float32"),
        seed=seed,
    )
    run_federated(registry.create("architecture", "mnist_2nn").build((1, 28, 28), 10), run)
    return float(np.median(norms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="MNIST folder (default: shared data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--scales", type=float, nargs="+", default=[4.0])
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a shared machine: one thread per benchmark
    rows: dict[str, list[dict[str, float]]] = {}
    for seed in args.seeds:
        data = federated_mnist(args.data, seed)
        bound = honest_norm(data, seed)
        print(f"seed {seed}: median honest update norm {bound:.3f}", flush=True)
        params = {
            "fedavg": {},
            "krum": {"byzantine_fraction": 0.2},
            "multi_krum": {"byzantine_fraction": 0.2},
            "median": {},
            "trimmed_mean": {"trim_fraction": 0.2},
            "norm_bounding": {"norm_bound": bound, "noise_stddev": 0.0},
        }
        cases: list[tuple[str, tuple[str, dict[str, Any]], list[tuple[str, dict[str, Any]]]]]
        cases = [("no attack / fedavg", ("fedavg", {}), [])]
        for scale in args.scales:
            flip = [("sign_flip", {"fraction": 0.2, "scale": scale})]
            for rule in ("fedavg", *ROBUST):
                cases.append((f"sign flip x{scale:g} / {rule}", (rule, params[rule]), flip))
        backdoor = [("pixel_backdoor", {"fraction": 0.1, "poison_fraction": 0.5, "boost": 5.0})]
        cases.append(("backdoor / fedavg", ("fedavg", {}), backdoor))
        bounded = {"norm_bound": bound, "noise_stddev": 0.001}
        cases.append(("backdoor / norm_bounding", ("norm_bounding", bounded), backdoor))
        for label, strategy, middleware in cases:
            figures = one_run(data, strategy, middleware, seed, args.rounds)
            rows.setdefault(label, []).append(figures)
            print(seed, label, json.dumps(figures), flush=True)
    print("\n| case | val accuracy % | test accuracy % | attack success % |")
    print("| --- | --- | --- | --- |")
    summary = {}
    for label, runs in rows.items():
        cells = [mean_std([100 * run["val_accuracy"] for run in runs])]
        cells.append(mean_std([100 * run["test_accuracy"] for run in runs]))
        asr = [100 * run["attack_success_rate"] for run in runs if "attack_success_rate" in run]
        cells.append(mean_std(asr) if asr else "")
        print(f"| {label} | " + " | ".join(cells) + " |")
        summary[label] = {key: spread([run[key] for run in runs]) for key in runs[0]}
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(summary, handle, indent=2)


if __name__ == "__main__":
    main()
