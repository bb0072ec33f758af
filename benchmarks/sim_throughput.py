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
time of the rounds after it (``benchmarks/_timing.py``):

- ``fedsearch``: ``run_federated`` (float32 codecs through the channel), on 1, 2
  and all cores (see below).
- ``hand loop``: the minimal sequential PyTorch loop a user would write: per
  client ``load_state_dict``, ``torch.optim.SGD``, a shuffled ``DataLoader``
  over a ``TensorDataset`` of the client's examples, then a weighted average
  of the ``state_dict``s.
- ``flower``: Flower's simulation (``flwr.simulation.run_simulation``, a
  ``ClientApp`` running the hand loop's local SGD and a ``ServerApp`` with
  ``FedAvg``; ``benchmarks/flwr_runner.py``) when ``flwr`` is installed.

Every runner is timed in the same run, in interleaved repetitions (``--repeats``):
the output gives each runner's median start-up and warm-up round, the median and
spread of its time per round after the warm-up and of its total, the median ratios
to the hand loop (per round and total), and how far fedsearch's final weights are
from its 1-core (sequential) run with the same seed. fedsearch runs on 1 core (one
thread), 2 cores (two worker processes) and all cores (the defaults, ``execution =
"auto"``); the hand loop always gets torch's default threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from _federation import clients_on_test_split, fedavg_run
from _timing import RoundClock, interleaved, load_average, median_spread
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
    workload: Workload,
    data: FederatedData,
    clock: RoundClock,
    setting: FedsearchSetting | None = None,
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
    run = fedavg_run(data, federation, registry=get_registry())
    model = build_model(workload, data)
    threads = torch.get_num_threads()
    torch.set_num_threads(setting.threads or threads)
    clock.tick()
    try:
        result = run_federated(model, run, on_round=lambda record: clock.tick())
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


def run_hand_loop(workload: Workload, data: FederatedData, clock: RoundClock) -> Outcome:
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
    return Outcome(accuracy(model, data.test_inputs, data.test_labels))


def run_hand_loop_one_thread(workload: Workload, data: FederatedData, clock: RoundClock) -> Outcome:
    """The hand loop on one intra-op thread: how much of a ratio is oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_hand_loop(workload, data, clock)
    finally:
        torch.set_num_threads(threads)


def run_flower(workload: Workload, data: FederatedData, clock: RoundClock) -> Outcome:
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
        run_fedsearch(workload, data, RoundClock(), setting)
    run_hand_loop(workload, data, RoundClock())


Runner = Callable[[Workload, FederatedData, RoundClock], Outcome]


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


def largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between two sets of weights."""
    return max(float((a[name] - b[name]).abs().max()) for name in a)


WEIGHT_TOLERANCE = 1e-4
"""Largest final-weight difference from the 1-core run counted as the same result."""


def report(
    name: str, clocks: dict[str, list[RoundClock]], outcomes: dict[str, Outcome]
) -> list[str]:
    """Markdown rows of one workload: start-up, warm-up round, per round after it and
    total (median (min-max)), ratios to the hand loop, equality of the final weights."""
    hand = next(iter(clocks.values()))
    reference = outcomes["fedsearch 1 core"]
    rows = []
    for label, runs in clocks.items():
        outcome = outcomes[label]
        pairs = list(zip(hand, runs, strict=True))
        round_ratios = [h.per_round_s / c.per_round_s for h, c in pairs]
        total_ratios = [h.total_s / c.total_s for h, c in pairs]
        if outcome.weights is not None:
            difference = largest_difference(outcome.weights, reference.weights)
            same = "yes" if difference <= WEIGHT_TOLERANCE else "**no**"
            equality = f"{difference:.1e} ({same})"
        else:
            equality = "-"
        rows.append(
            f"| {name} | {label} | {outcome.execution or '-'} "
            f"| {statistics.median(c.startup_s for c in runs):.3f} "
            f"| {statistics.median(c.warmup_s for c in runs):.3f} "
            f"| {median_spread([c.per_round_s for c in runs], 3)} "
            f"| {median_spread([c.total_s for c in runs])} | {outcome.accuracy:.4f} "
            f"| {median_spread(round_ratios, unit='x')} | {median_spread(total_ratios, unit='x')} "
            f"| {equality} |"
        )
    return rows


LEGEND = """
Columns: wall seconds from loaded data to final test accuracy, split into
start-up (before the first round) and the first round (warm-up: first calls,
worker processes or Flower's actors starting), medians over the repetitions,
then the mean time of the rounds after the warm-up and the total, median over
the repetitions (min-max); "hand / runner" (per round after the warm-up, and
total) is the median of the per-repetition ratios (reference hand loop seconds
/ runner seconds, both from the same repetition; the reference is named at the
top), above 1x means faster than the hand loop; "max abs(w - w_1core)" is the
largest difference of the final global weights from the fedsearch 1-core run
(same seed), "yes" when within {tolerance:g}. The hand loop uses torch's default
threads ({threads}); fedsearch runs its own process on one thread, as `fedsearch
run` does by default (workers.threads = 1): "fedsearch 1 core" has no worker
processes, "N cores" N worker processes of one thread each (execution =
"parallel"); "auto" the defaults, whose choice is in the execution column. "hand
loop, 1 thread" is context, not a target: on a loaded machine torch's default
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
        runs = {label: functools.partial(run, workload, data) for label, run in table.items()}
        rows += report(workload.name, *interleaved(runs, args.repeats, workload.name))
    print(f"load average {load_average()} at the end")
    print(LEGEND.format(tolerance=WEIGHT_TOLERANCE, threads=torch.get_num_threads()))
    print(
        "| workload | runner | execution | start-up s | round 1 (warm-up) s "
        "| per round after warm-up s | total s | test accuracy | hand / runner per round "
        "| hand / runner total | max abs(w - w_1core) |"
    )
    print("|" + " --- |" * 11)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
