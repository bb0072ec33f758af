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

Runners, each timed from the loaded data to the final test accuracy:

- ``fedsearch``: ``run_federated`` (float32 codecs through the channel), on 1, 2
  and all cores (see below).
- ``hand loop``: the minimal sequential PyTorch loop a user would write: per
  client ``load_state_dict``, ``torch.optim.SGD``, a shuffled ``DataLoader``
  over a ``TensorDataset`` of the client's examples, then a weighted average
  of the ``state_dict``s.
- ``flower``: Flower's simulation (``flwr.simulation.run_simulation`` with a
  ``ClientApp`` of ``NumPyClient``s and a ``ServerApp`` with ``FedAvg``), the
  same loop body as the hand loop inside the client, when ``flwr`` is
  installed; otherwise the column says so.

Every runner is timed in the same run, in interleaved repetitions (``--repeats``):
the output gives each runner's median time and spread, the median ratio to the
hand loop, and how far fedsearch's final weights are from its 1-core
(sequential) run with the same seed. fedsearch runs on 1 core (one thread), 2
cores (two worker processes) and all cores (the defaults, ``execution =
"auto"``); the hand loop always gets torch's default threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from _federation import clients_on_test_split, fedavg_run
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from fedsearch import ComponentRegistry
from fedsearch import get_registry as _discover_plugins
from fedsearch.config import FederationConfig
from fedsearch.federated import FederatedData, accuracy, run_federated
from fedsearch.federated._parallel import usable_cores


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


@dataclass(frozen=True)
class Outcome:
    """What a runner ends with: final test accuracy and, for fedsearch, the global weights."""

    accuracy: float
    weights: dict[str, torch.Tensor] | None = None
    execution: str = ""


@dataclass(frozen=True)
class FedsearchSetting:
    """How many cores fedsearch may use: ``cores`` 1 is one thread and no workers."""

    label: str
    execution: str
    workers: int | None
    threads: int | None = None


def fedsearch_settings() -> list[FedsearchSetting]:
    """1 core, 2 cores, and all cores (the defaults: ``execution = "auto"``).

    The simulating process itself runs on one intra-op thread, as ``fedsearch
    run`` does by default (``workers.threads = 1``); the cores beyond the first
    are used by worker processes.
    """
    cores = usable_cores()
    settings = [
        FedsearchSetting("fedsearch 1 core", "auto", 1, threads=1),
        FedsearchSetting("fedsearch 2 cores", "parallel", 2, threads=1),
    ]
    if cores > 2:
        settings.append(FedsearchSetting(f"fedsearch {cores} cores", "parallel", cores, threads=1))
    settings.append(FedsearchSetting(f"fedsearch auto ({cores} cores)", "auto", None, threads=1))
    return settings


def run_fedsearch(
    workload: Workload, data: FederatedData, setting: FedsearchSetting | None = None
) -> Outcome:
    """fedsearch's simulation; returns the final test accuracy and weights."""
    setting = setting or FedsearchSetting("fedsearch", "auto", None)
    federation = FederationConfig(
        num_clients=workload.num_clients,
        rounds=workload.rounds,
        fraction=workload.fraction,
        local_epochs=1,
        batch_size=workload.batch_size,
        learning_rate=workload.learning_rate,
        eval_every=workload.rounds,
        execution=setting.execution,
        client_workers=setting.workers,
    )
    run = fedavg_run(data, federation)
    model = build_model(workload, data)
    threads = torch.get_num_threads()
    torch.set_num_threads(setting.threads or threads)
    try:
        result = run_federated(model, run)
    finally:
        torch.set_num_threads(threads)
    executions = sorted({record.execution for record in result.history})
    # the validation split is the test split here
    return Outcome(result.history[-1].val_accuracy, result.weights, "/".join(executions))


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


def run_hand_loop(workload: Workload, data: FederatedData) -> Outcome:
    """A minimal sequential PyTorch FedAvg loop; returns the final test accuracy."""
    model = build_model(workload, data)
    global_state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    for _ in range(workload.rounds):
        states, sizes = [], []
        for client in sampled_clients(workload, rng):
            index = torch.from_numpy(data.client_indices[client])
            model.load_state_dict(global_state)
            local_sgd(model, data.train_inputs[index], data.train_labels[index], workload)
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            sizes.append(len(index))
        global_state = average(states, sizes)
    model.load_state_dict(global_state)
    return Outcome(accuracy(model, data.test_inputs, data.test_labels))


def run_hand_loop_one_thread(workload: Workload, data: FederatedData) -> Outcome:
    """The hand loop on one intra-op thread: how much of a ratio is oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_hand_loop(workload, data)
    finally:
        torch.set_num_threads(threads)


def run_flower(workload: Workload, data: FederatedData) -> Outcome:
    """Flower's simulation engine; returns the final test accuracy."""
    from flwr_runner import flower_fedavg  # benchmarks/flwr_runner.py, imports flwr

    model = build_model(workload, data)
    state = flower_fedavg(
        workload=workload,
        data=data,
        model=model,
        local_sgd=local_sgd,
        clients_per_round=len(sampled_clients(workload, np.random.default_rng(0))),
    )
    model.load_state_dict(state)
    return Outcome(accuracy(model, data.test_inputs, data.test_labels))


def flower_available() -> bool:
    """Whether ``flwr`` (with its simulation extra) is importable."""
    try:
        import flwr.simulation  # noqa: F401
    except ImportError:
        return False
    return True


def warm_up() -> None:
    """First autograd, vmap and fork calls of a process are slow; pay them before timing."""
    workload = Workload("warm-up", "digits", "mlp", {"widths": [16]}, 4, 1.0, 1, 32, 0.1)
    data = load_data(workload, None, smoke=True)
    for setting in fedsearch_settings():
        run_fedsearch(workload, data, setting)
    run_hand_loop(workload, data)


Runner = Callable[[Workload, FederatedData], Outcome]


def runners(with_flower: bool, default_hand_loop: bool = True) -> dict[str, Runner]:
    """Every runner of a workload by label: the hand loops first, the first one the
    reference for the ratios."""
    table: dict[str, Runner] = {"hand loop": run_hand_loop} if default_hand_loop else {}
    table["hand loop, 1 thread"] = run_hand_loop_one_thread
    for setting in fedsearch_settings():
        table[setting.label] = functools.partial(run_fedsearch, setting=setting)
    if with_flower:
        table["flower"] = run_flower
    return table


def timed(runner: Runner, workload: Workload, data: FederatedData) -> tuple[float, Outcome]:
    """Wall seconds and outcome of one runner."""
    started = time.perf_counter()
    outcome = runner(workload, data)
    return time.perf_counter() - started, outcome


def measure(
    workload: Workload, data: FederatedData, table: dict[str, Runner], repeats: int
) -> tuple[dict[str, list[float]], dict[str, Outcome]]:
    """Interleaved repetitions: every runner once per repetition, in a rotating order,
    so load that comes and goes on a shared machine hits every runner alike."""
    times: dict[str, list[float]] = {label: [] for label in table}
    outcomes: dict[str, Outcome] = {}
    labels = list(table)
    for repeat in range(repeats):
        shift = repeat % len(labels)
        for label in labels[shift:] + labels[:shift]:
            seconds, outcomes[label] = timed(table[label], workload, data)
            times[label].append(seconds)
            print(f"    {workload.name} #{repeat + 1} {label}: {seconds:.2f} s", flush=True)
    return times, outcomes


def largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between two sets of weights."""
    return max(float((a[name] - b[name]).abs().max()) for name in a)


WEIGHT_TOLERANCE = 1e-4
"""Largest final-weight difference from the 1-core run counted as the same result."""


def report(name: str, times: dict[str, list[float]], outcomes: dict[str, Outcome]) -> list[str]:
    """Markdown rows of one workload: time median (min-max), ratio to the hand loop, equality."""
    hand = next(iter(times.values()))
    reference = outcomes["fedsearch 1 core"]
    rows = []
    for label, seconds in times.items():
        outcome = outcomes[label]
        ratios = [h / s for h, s in zip(hand, seconds, strict=True)]
        if outcome.weights is not None:
            difference = largest_difference(outcome.weights, reference.weights)
            same = "yes" if difference <= WEIGHT_TOLERANCE else "**no**"
            equality = f"{difference:.1e} ({same})"
        else:
            equality = "-"
        rows.append(
            f"| {name} | {label} | {outcome.execution or '-'} | {statistics.median(seconds):.2f} "
            f"({min(seconds):.2f}-{max(seconds):.2f}) | {outcome.accuracy:.4f} | "
            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) | {equality} |"
        )
    return rows


def load_average() -> str:
    """The 1-minute load average, or "?" where the OS has none."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


LEGEND = """
Columns: wall seconds from loaded data to final test accuracy, median over the
repetitions (min-max); "hand / runner" is the median of the per-repetition
ratios (reference hand loop seconds / runner seconds, both from the same
repetition; the reference is named at the top),
above 1x means faster than the hand loop; "max |w - w_1core|" is the largest
difference of the final global weights from the fedsearch 1-core run (same
seed), "yes" when within {tolerance:g}. The hand loop uses torch's default
threads ({threads}); fedsearch runs its own process on one thread, as `fedsearch
run` does by default (workers.threads = 1): "fedsearch 1 core" has no worker
processes, "N cores" N worker processes of one thread each (execution =
"parallel");
"auto" the defaults, whose choice is in the execution column. "hand loop,
1 thread" is context, not a target: on a loaded machine torch's default
threads oversubscribe the cores and slow the default hand loop down.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder with the MNIST files")
    parser.add_argument("--only", nargs="+", choices=[w.name for w in WORKLOADS])
    parser.add_argument("--smoke", action="store_true", help="1/20 of MNIST, checks it runs")
    parser.add_argument("--no-flower", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions")
    parser.add_argument(
        "--no-default-hand-loop",
        action="store_true",
        help="skip the hand loop on torch's default threads (very slow on a loaded machine); "
        "ratios are then to the 1-thread hand loop",
    )
    args = parser.parse_args()
    with_flower = flower_available() and not args.no_flower
    flower_note = "skipped (--no-flower)" if args.no_flower else "not installed"
    if not with_flower:
        print(f"Flower column {flower_note}: pip install -e '.[flower]' to include it")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} default threads, {usable_cores()} usable cores, GPU: {gpu}, "
        f"load average {load_average()} at start, {args.repeats} repetitions"
    )
    table = runners(with_flower, default_hand_loop=not args.no_default_hand_loop)
    print(f"ratios are to the {next(iter(table))!r} runner")
    warm_up()
    rows = []
    for workload in WORKLOADS:
        if args.only and workload.name not in args.only:
            continue
        data = load_data(workload, args.data, args.smoke)
        rows += report(workload.name, *measure(workload, data, table, args.repeats))
    print(f"load average {load_average()} at the end")
    print(LEGEND.format(tolerance=WEIGHT_TOLERANCE, threads=torch.get_num_threads()))
    print(
        "| workload | runner | execution | seconds, median (min-max) | test accuracy "
        "| hand / runner | max abs(w - w_1core) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
