"""Sequential vs vectorized vs parallel client execution, per model shape: the data behind ``auto``.

Run from the repository root on a quiet machine:

    python benchmarks/execution_paths.py            # synthetic inputs, no files needed

Trains 10 clients (one round, the same shuffles) with each path and prints the
wall time of each and their ratio, for small and large MLPs and for LeNet-5,
along with the round's work (examples x parameters) and the path
``execution = "auto"`` picks. The rule in ``fedsearch.federated.choose_execution``
(and ``parallel_pays`` for the parallel path, with as many workers as usable
cores, each on one thread) should pick the fastest column. The parallel time is
a round on a started pool; starting it (once per trial) is printed apart.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from fedsearch import get_registry
from fedsearch.federated import ClientJob, LocalTrainer, choose_execution
from fedsearch.federated._parallel import close_client_pool, parallel_pays, usable_cores

CLIENTS = 10


def mlp(features: int, hidden: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    return nn.Sequential(*layers, nn.Linear(features, 10))


def cases() -> list[tuple[str, nn.Module, tuple[int, ...], int, int, int]]:
    """(name, model, input shape, examples per client, local epochs, batch size)."""
    lenet5 = get_registry().create("architecture", "lenet5").build((1, 28, 28), 10)
    return [
        ("digits MLP 64-128-10, B=32", mlp(64, (128,)), (1, 8, 8), 120, 2, 32),
        ("digits MLP 64-128-10, B=10", mlp(64, (128,)), (1, 8, 8), 120, 2, 10),
        ("digits MLP 64-32-10, B=32", mlp(64, (32,)), (1, 8, 8), 120, 1, 32),
        ("MLP 784-32-10, B=32", mlp(784, (32,)), (1, 28, 28), 120, 1, 32),
        ("MLP 784-100-10, B=10", mlp(784, (100,)), (1, 28, 28), 600, 1, 10),
        ("2NN 784-200-200-10, B=10", mlp(784, (200, 200)), (1, 28, 28), 600, 1, 10),
        ("LeNet-5, B=32", lenet5, (1, 28, 28), 600, 1, 32),
    ]


def time_path(model, inputs, labels, clients, epochs, batch, execution) -> float:
    trainer = LocalTrainer(
        model,
        inputs,
        labels,
        [],
        local_epochs=epochs,
        batch_size=batch,
        learning_rate=0.05,
        generator=torch.Generator().manual_seed(0),
        execution=execution,
    )
    weights = {name: t.detach().clone() for name, t in model.state_dict().items()}
    jobs = [ClientJob(client, indices) for client, indices in enumerate(clients)]
    started = time.perf_counter()
    trainer.train_clients(weights, jobs[:2] if execution != "parallel" else jobs)  # warm-up
    startup = time.perf_counter() - started
    started = time.perf_counter()
    trainer.train_clients(weights, jobs)
    elapsed = time.perf_counter() - started
    close_client_pool(trainer)
    return elapsed, startup - elapsed


def main() -> None:
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {CLIENTS} clients, "
        f"{usable_cores()} usable cores (parallel workers)"
    )
    print(
        "| model | work | sequential s | vectorized s | parallel s (pool start) "
        "| sequential / vectorized | sequential / parallel | auto picks |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, model, shape, per_client, epochs, batch in cases():
        generator = torch.Generator().manual_seed(0)
        inputs = torch.rand(CLIENTS * per_client, *shape, generator=generator)
        labels = torch.randint(0, 10, (CLIENTS * per_client,), generator=generator)
        clients = [np.arange(k * per_client, (k + 1) * per_client) for k in range(CLIENTS)]
        times = {
            path: time_path(model, inputs, labels, clients, epochs, batch, path)
            for path in ("sequential", "vectorized", "parallel")
        }
        round_batches = [[torch.zeros(batch)] * (epochs * per_client // batch)] * CLIENTS
        picked = (
            "parallel"
            if parallel_pays(model, round_batches, None)
            else choose_execution(model, "auto", CLIENTS)
        )
        work = CLIENTS * per_client * epochs * sum(p.numel() for p in model.parameters())
        sequential = times["sequential"][0]
        print(
            f"| {name} | {work / 1e6:.0f}M | {sequential:.3f} | {times['vectorized'][0]:.3f} | "
            f"{times['parallel'][0]:.3f} ({times['parallel'][1]:.3f}) | "
            f"{sequential / times['vectorized'][0]:.2f}x | "
            f"{sequential / times['parallel'][0]:.2f}x | {picked} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
