"""Simulation throughput: the same FedAvg workload run by fedsearch, a hand loop and Flower.

Run from the repository root on a quiet machine (MNIST in ``--data`` or
$FEDSEARCH_DATA_DIR/mnist; Flower from ``pip install -e ".[flower]"``):

    python benchmarks/sim_throughput.py --data ../shared/data
    python benchmarks/sim_throughput.py --smoke          # tiny sizes, checks it runs

Workloads (plain SGD, FedAvg, final accuracy on the test split):

- ``digits``: scikit-learn digits, 10 clients x 3 rounds, all clients each round,
  MLP 64-128-10, E=1, B=32.
- ``mnist_2nn``: MNIST, 100 clients, C=0.1, 10 rounds, 2NN (McMahan et al.), E=1, B=10.
- ``lenet5``: MNIST, 10 clients x 2 rounds, all clients each round, Caffe LeNet-5, E=1, B=32.

Runners, each timed from the loaded data to the final test accuracy, split
into start-up (before the first round), the first round (warm-up) and the mean
time of the rounds after it (see ``benchmarks/_timing.py``):

- ``fedsearch``: ``run_federated`` (float32 codecs through the channel, execution ``auto``).
- ``hand loop``: the minimal sequential PyTorch loop a user would write: per
  client ``load_state_dict``, ``torch.optim.SGD``, a shuffled ``DataLoader``
  over a ``TensorDataset`` of the client's examples, then a weighted average
  of the ``state_dict``s.
- ``flower``: Flower's simulation (``flwr.simulation.run_simulation`` with a
  ``ClientApp`` of ``NumPyClient``s and a ``ServerApp`` with ``FedAvg``), the
  same loop body as the hand loop inside the client, when ``flwr`` is
  installed; otherwise the column says so.

Prints the wall times and the ratios measured in this one run: per round
after the warm-up, and in total.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from _federation import clients_on_test_split, fedavg_run
from _timing import RoundClock
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from fedsearch import ComponentRegistry
from fedsearch import get_registry as _discover_plugins
from fedsearch.config import FederationConfig
from fedsearch.federated import FederatedData, accuracy, run_federated


@functools.cache
def get_registry() -> ComponentRegistry:
    """Plugins are discovered once, outside every timed run."""
    return _discover_plugins()


@dataclass(frozen=True)
class Workload:
    """One FedAvg job."""

    name: str
    dataset: str
    architecture: str
    architecture_params: dict
    num_clients: int
    fraction: float
    rounds: int
    batch_size: int
    learning_rate: float


WORKLOADS = [
    Workload("digits", "digits", "mlp", {"widths": [128]}, 10, 1.0, 3, 32, 0.1),
    Workload("mnist_2nn", "mnist", "mnist_2nn", {}, 100, 0.1, 10, 10, 0.1),
    Workload("lenet5", "mnist", "lenet5", {}, 10, 1.0, 2, 32, 0.05),
]


def load_data(workload: Workload, data_root: str | None, smoke: bool) -> FederatedData:
    """The workload's dataset, IID over its clients (seed 0); smoke keeps 1/20 of MNIST."""
    registry = get_registry()
    params = {"root": data_root} if workload.dataset != "digits" else {}
    splits = registry.create("dataset", workload.dataset, params).load()
    if smoke and workload.dataset != "digits":
        splits = dataclasses.replace(
            splits,
            train_inputs=splits.train_inputs[:3000].clone(),
            train_labels=splits.train_labels[:3000].clone(),
        )
    iid = registry.create("partitioner", "iid")
    return clients_on_test_split(splits, iid, workload.num_clients, seed=0)


def build_model(workload: Workload, data: FederatedData) -> nn.Module:
    """The workload's model, seeded identically for every runner."""
    torch.manual_seed(0)
    architecture = get_registry().create(
        "architecture", workload.architecture, workload.architecture_params
    )
    return architecture.build(data.input_shape, data.num_classes)


def sampled_clients(workload: Workload, rng: np.random.Generator) -> list[int]:
    """Uniform sampling without replacement, as fedsearch's strategies do."""
    count = max(1, round(workload.fraction * workload.num_clients))
    return sorted(int(c) for c in rng.choice(workload.num_clients, size=count, replace=False))


def run_fedsearch(workload: Workload, data: FederatedData, clock: RoundClock) -> float:
    """fedsearch's simulation; returns the final test accuracy."""
    federation = FederationConfig(
        num_clients=workload.num_clients,
        rounds=workload.rounds,
        fraction=workload.fraction,
        local_epochs=1,
        batch_size=workload.batch_size,
        learning_rate=workload.learning_rate,
        eval_every=workload.rounds,
    )
    run = fedavg_run(data, federation, registry=get_registry())
    model = build_model(workload, data)
    clock.tick()
    result = run_federated(model, run, on_round=lambda record: clock.tick())
    return result.history[-1].val_accuracy  # the validation split is the test split here


def local_sgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, workload: Workload) -> None:
    """One epoch of minibatch SGD, written the usual way."""
    optimizer = torch.optim.SGD(model.parameters(), lr=workload.learning_rate)
    loader = DataLoader(TensorDataset(x, y), batch_size=workload.batch_size, shuffle=True)
    model.train()
    for inputs, targets in loader:
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()


def average(states: list[dict[str, torch.Tensor]], sizes: list[int]) -> dict[str, torch.Tensor]:
    """Example-weighted mean of state dicts."""
    total = sum(sizes)
    return {
        name: sum(state[name] * (size / total) for state, size in zip(states, sizes, strict=True))
        for name in states[0]
    }


def run_hand_loop(workload: Workload, data: FederatedData, clock: RoundClock) -> float:
    """A minimal sequential PyTorch FedAvg loop; returns the final test accuracy."""
    model = build_model(workload, data)
    global_state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    clock.tick()
    for _ in range(workload.rounds):
        states, sizes = [], []
        for client in sampled_clients(workload, rng):
            index = torch.from_numpy(data.client_indices[client])
            model.load_state_dict(global_state)
            local_sgd(model, data.train_inputs[index], data.train_labels[index], workload)
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            sizes.append(len(index))
        global_state = average(states, sizes)
        clock.tick()
    model.load_state_dict(global_state)
    return accuracy(model, data.test_inputs, data.test_labels)


def run_flower(workload: Workload, data: FederatedData, clock: RoundClock) -> float:
    """Flower's simulation engine; returns the final test accuracy."""
    from flwr_runner import flower_fedavg  # benchmarks/flwr_runner.py, imports flwr

    model = build_model(workload, data)
    state = flower_fedavg(
        workload=workload,
        data=data,
        model=model,
        local_sgd=local_sgd,
        clients_per_round=len(sampled_clients(workload, np.random.default_rng(0))),
        clock=clock,
    )
    model.load_state_dict(state)
    return accuracy(model, data.test_inputs, data.test_labels)


def flower_available() -> bool:
    """Whether ``flwr`` (with its simulation extra) is importable."""
    try:
        import flwr.simulation  # noqa: F401
    except ImportError:
        return False
    return True


def warm_up() -> None:
    """First autograd and vmap calls of a process are slow; pay them before timing."""
    workload = Workload("warm-up", "digits", "mlp", {"widths": [16]}, 4, 1.0, 1, 32, 0.1)
    data = load_data(workload, None, smoke=True)
    run_fedsearch(workload, data, RoundClock())
    run_hand_loop(workload, data, RoundClock())


def timed(
    runner: Callable[[Workload, FederatedData, RoundClock], float], workload, data
) -> tuple[RoundClock, float]:
    """The round clock and final accuracy of one runner."""
    clock = RoundClock()
    final_accuracy = runner(workload, data, clock)
    clock.stop()
    return clock, final_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder with the MNIST files")
    parser.add_argument("--only", nargs="+", choices=[w.name for w in WORKLOADS])
    parser.add_argument("--smoke", action="store_true", help="1/20 of MNIST, checks it runs")
    parser.add_argument("--no-flower", action="store_true")
    args = parser.parse_args()
    with_flower = flower_available() and not args.no_flower
    flower_note = "skipped (--no-flower)" if args.no_flower else "not installed"
    if not with_flower:
        print(f"Flower column {flower_note}: pip install -e '.[flower]' to include it")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    warm_up()
    for workload in WORKLOADS:
        if args.only and workload.name not in args.only:
            continue
        data = load_data(workload, args.data, args.smoke)
        ours = timed(run_fedsearch, workload, data)
        hand = timed(run_hand_loop, workload, data)
        flower = timed(run_flower, workload, data) if with_flower else None
        rows.append((workload.name, ours, hand, flower))
        print(
            f"  {workload.name}: fedsearch {ours[0].total_s:.2f} s, "
            f"hand loop {hand[0].total_s:.2f} s"
            + (f", flower {flower[0].total_s:.2f} s" if flower else ""),
            flush=True,
        )
    print()
    print_table(rows, flower_note)


def print_table(rows: list, flower_note: str) -> None:
    """One line per workload and runner: start-up, warm-up round, per round after it, total."""
    print(
        "| workload | runner | start-up s | round 1 (warm-up) s | per round after warm-up s "
        "| total s | accuracy | per round / fedsearch | total / fedsearch |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, ours, hand, flower in rows:
        runners = [("fedsearch", ours), ("hand loop", hand), ("flower", flower)]
        for runner, measured in runners:
            if measured is None:
                print(f"| {name} | {runner} | {flower_note} | | | | | | |")
                continue
            clock, final_accuracy = measured
            print(
                f"| {name} | {runner} | {clock.startup_s:.3f} | {clock.warmup_s:.3f} "
                f"| {clock.per_round_s:.3f} | {clock.total_s:.2f} | {final_accuracy:.4f} "
                f"| {clock.per_round_s / ours[0].per_round_s:.2f}x "
                f"| {clock.total_s / ours[0].total_s:.1f}x |"
            )


if __name__ == "__main__":
    main()
