"""DP-FedAvg on MNIST at epsilon 1, 2, 4 and 8 (client-level DP), beside Geyer et al. 2017.

Run from the repository root (MNIST IDX files in ``--data`` or $FEDSEARCH_DATA_DIR/mnist):

    nice -n 10 python benchmarks/dp.py --seeds 0 1 2

Setting (small enough for a shared 2-core machine): the 57,000 MNIST training
images left after the 5% validation split dealt IID to 1,000 clients (57
each; Geyer et al.'s K = 1000 setting has 60 each); Poisson client sampling
with probability q = 0.1 (about 100 clients a round); multinomial logistic
regression (7,850 weights; Geyer et al. train a small MLP); 1 local epoch,
batch 10, client learning rate 0.1; ``--rounds`` rounds (default 40);
server learning rate 1; delta = 1e-5.

For every target epsilon the noise multiplier is calibrated with
dp-accounting's RDP accountant (``mechanism_calibration``) for the Poisson
sampled Gaussian mechanism over the rounds; the run's epsilon is then
recomputed by the trial's own accounting (``fedsearch.trial._privacy``) and
printed beside it. The clip norm is the median L2 norm of the clients'
updates in the first round of the non-private run (measured on training
clients only). The non-private row is FedAvg with the same sampling.
"""

from __future__ import annotations

import argparse
import json
import logging

import dp_accounting
import torch
from _federation import VAL_FRACTION, mean_std, spread
from dp_accounting import mechanism_calibration, rdp
from torch import nn

from fedsearch import get_registry
from fedsearch.components import DpParameters
from fedsearch.config import FederationConfig
from fedsearch.federated import (
    FederatedData,
    FederatedRun,
    accuracy,
    prepare_federated_data,
    run_federated,
)
from fedsearch.trial._privacy import compute_epsilon

CLIENTS = 1000
RATE = 0.1
DELTA = 1e-5
EPSILONS = (1.0, 2.0, 4.0, 8.0)


def federated_mnist(data_root: str | None, seed: int) -> FederatedData:
    """MNIST, 5% validation carved out, 1,000 IID clients."""
    registry = get_registry()
    splits = registry.create("dataset", "mnist", {"root": data_root}).load()
    return prepare_federated_data(
        splits,
        val_fraction=VAL_FRACTION,
        partitioner=registry.create("partitioner", "iid"),
        num_clients=CLIENTS,
        seed=seed,
    )


def calibrated_noise(epsilon: float, rounds: int) -> float:
    """The noise multiplier whose Poisson-sampled Gaussian over ``rounds`` costs ``epsilon``."""

    def event(z: float) -> dp_accounting.DpEvent:
        sampled = dp_accounting.PoissonSampledDpEvent(RATE, dp_accounting.GaussianDpEvent(z))
        return dp_accounting.SelfComposedDpEvent(sampled, rounds)

    return float(
        mechanism_calibration.calibrate_dp_mechanism(
            rdp.RdpAccountant, event, epsilon, DELTA, tol=1e-4
        )
    )


def one_run(
    data: FederatedData, strategy: tuple[str, dict], seed: int, rounds: int
) -> tuple[dict[str, float], list[float]]:
    """Train logistic regression; return accuracies and the first round's update norms."""
    registry = get_registry()
    federation = FederationConfig(
        num_clients=CLIENTS,
        rounds=rounds,
        fraction=RATE,
        local_epochs=1,
        batch_size=10,
        learning_rate=0.1,
        eval_every=rounds,
        execution="sequential",
    )
    norms: list[float] = []
    inner = registry.create("strategy", *strategy)
    original = inner.aggregate

    def aggregate(weights, updates, server_round):
        if server_round.index == 0:
            for update in updates:
                squares = sum(float(t.double().pow(2).sum()) for t in update.delta.values())
                norms.append(squares**0.5)
        return original(weights, updates, server_round)

    inner.aggregate = aggregate  # type: ignore[method-assign]
    run = FederatedRun(
        data=data,
        federation=federation,
        strategy=inner,
        downlink_codec=registry.create("codec", "float32"),
        uplink_codec=registry.create("codec", "float32"),
        seed=seed,
    )
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    result = run_federated(model, run)
    model.load_state_dict(result.weights)
    model.eval()
    figures = {
        "val_accuracy": accuracy(model, data.val_inputs, data.val_labels),
        "test_accuracy": accuracy(model, data.test_inputs, data.test_labels),
    }
    return figures, norms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="MNIST folder (default: shared data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a shared machine: one thread per benchmark
    logging.getLogger("absl").setLevel(logging.ERROR)  # RDP orders dp-accounting drops
    noise = {epsilon: calibrated_noise(epsilon, args.rounds) for epsilon in EPSILONS}
    rows: dict[str, list[dict[str, float]]] = {}
    for seed in args.seeds:
        data = federated_mnist(args.data, seed)
        plain, norms = one_run(data, ("fedavg", {}), seed, args.rounds)
        clip = float(torch.tensor(norms).median())
        rows.setdefault("non-private", []).append(plain)
        print(seed, "non-private", json.dumps(plain), f"clip {clip:.4f}", flush=True)
        for epsilon, z in noise.items():
            params = {"noise_multiplier": z, "clip_norm": clip, "delta": DELTA}
            figures, _ = one_run(data, ("dp_fedavg", params), seed, args.rounds)
            recorded = DpParameters(
                noise_multiplier=z,
                clip_norm=clip,
                sampling="poisson",
                sampling_rate=RATE,
                num_clients=CLIENTS,
                rounds=args.rounds,
                delta=DELTA,
                accountant="rdp",
            )
            figures["epsilon"] = compute_epsilon(recorded)
            figures["noise_multiplier"] = z
            rows.setdefault(f"epsilon {epsilon:g}", []).append(figures)
            print(seed, f"epsilon {epsilon:g}", json.dumps(figures), flush=True)
    print(
        "\n| setting | noise multiplier | epsilon (accounted) | val accuracy % | test accuracy % |"
    )
    print("| --- | --- | --- | --- | --- |")
    summary = {}
    for label, runs in rows.items():
        z = f"{runs[0]['noise_multiplier']:.3f}" if "noise_multiplier" in runs[0] else "0"
        eps = f"{runs[0]['epsilon']:.3f}" if "epsilon" in runs[0] else "inf"
        val = mean_std([100 * run["val_accuracy"] for run in runs])
        test = mean_std([100 * run["test_accuracy"] for run in runs])
        print(f"| {label} | {z} | {eps} | {val} | {test} |")
        summary[label] = {key: spread([run[key] for run in runs]) for key in runs[0]}
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(summary, handle, indent=2)


if __name__ == "__main__":
    main()
