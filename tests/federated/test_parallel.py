"""Parallel client execution: same weights as sequential, any worker count, clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

from fedsearch import CompressionContext, Compressor, FedsearchError
from fedsearch.components import StepContext, Weights
from fedsearch.config import FederationConfig
from fedsearch.federated import (
    ClientJob,
    FederatedData,
    FederatedRun,
    LocalTrainer,
    _parallel,
    run_federated,
)
from fedsearch.federated._parallel import (
    WorkerError,
    balanced_shares,
    close_client_pool,
    parallel_pays,
)

from .test_execution import CLIENTS, mlp


def make_trainer(model, execution, compressors=(), workers=None, epochs=2, max_grad_norm=None):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(60, 1, 4, 4, generator=generator)
    labels = torch.randint(0, 3, (60,), generator=generator)
    return LocalTrainer(
        model,
        inputs,
        labels,
        list(compressors),
        local_epochs=epochs,
        batch_size=8,
        learning_rate=0.2,
        max_grad_norm=max_grad_norm,
        generator=torch.Generator().manual_seed(1),
        execution=execution,
        workers=workers,
    )


def as_jobs(clients):
    return [ClientJob(client, indices) for client, indices in enumerate(clients)]


def train(
    model, execution, compressors=(), workers=None, mu=0.0, clients=CLIENTS, max_grad_norm=None
):
    trainer = make_trainer(model, execution, compressors, workers, max_grad_norm=max_grad_norm)
    weights = {name: t.detach().clone() for name, t in model.state_dict().items()}
    try:
        outcome = trainer.train_clients(weights, as_jobs(clients), proximal_mu=mu)
        return outcome.results, outcome.execution
    finally:
        close_client_pool(trainer)


def assert_same_results(expected, actual, exact=False):
    assert len(expected) == len(actual)
    for (want_w, want_loss), (got_w, got_loss) in zip(expected, actual, strict=True):
        assert got_loss == pytest.approx(want_loss, rel=1e-6)
        assert want_w.keys() == got_w.keys()
        for name in want_w:
            if exact:
                assert torch.equal(got_w[name], want_w[name]), name
            else:
                torch.testing.assert_close(got_w[name], want_w[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("mu", "max_grad_norm"), [(0.0, None), (0.5, None), (0.0, 0.3)])
def test_parallel_equals_sequential_for_uneven_clients(mu, max_grad_norm):
    sequential, used_seq = train(mlp(), "sequential", mu=mu, max_grad_norm=max_grad_norm)
    parallel, used_par = train(mlp(), "parallel", workers=2, mu=mu, max_grad_norm=max_grad_norm)
    assert (used_seq, used_par) == ("sequential", "parallel")
    start = mlp().state_dict()
    assert all(not torch.equal(w[n], start[n]) for w, _ in parallel for n in start)
    assert_same_results(sequential, parallel)


def test_the_worker_count_does_not_change_a_single_bit():
    one, _ = train(mlp(), "parallel", workers=1)
    for workers in (2, 3):
        assert_same_results(one, train(mlp(), "parallel", workers=workers)[0], exact=True)


def pruned_and_quantized(registry, model):
    chosen = [
        registry.create("compressor", "magnitude", {"sparsity": 0.5, "start_fraction": 0.0}),
        registry.create("compressor", "uniform", {"bits": 4}),
    ]
    context = CompressionContext(model=model, num_rounds=1, teacher=None)
    weights = {name: t.detach().clone() for name, t in model.state_dict().items()}
    for compressor in chosen:
        compressor.setup(context)
        compressor.on_round_start(weights, 0)
    return chosen


def test_compressors_train_in_workers_as_in_process(registry):
    model = mlp()
    sequential, _ = train(model, "sequential", pruned_and_quantized(registry, model))
    model = mlp()
    parallel, used = train(model, "parallel", pruned_and_quantized(registry, model), workers=2)
    assert used == "parallel"
    assert_same_results(sequential, parallel)
    plain, _ = train(mlp(), "parallel", workers=2)
    pairs = zip(parallel, plain, strict=True)
    # the workers trained through the masks and the fake quantization
    assert all(not torch.allclose(w["1.weight"], p["1.weight"]) for (w, _), (p, _) in pairs)


class HookedCompressor(Compressor):
    """Keeps a live forward hook, as feature distillation does: cannot be pickled."""

    stage = "distill"

    def setup(self, context: CompressionContext) -> None:
        self.handle = context.model.register_forward_hook(lambda *args: None)


def test_a_compressor_that_does_not_pickle_trains_in_process():
    model = mlp()
    compressor = HookedCompressor()
    compressor.setup(CompressionContext(model=model, num_rounds=1, teacher=None))
    results, used = train(model, "parallel", [compressor], workers=2)
    assert used == "sequential"
    assert_same_results(train(mlp(), "sequential")[0], results)


class FailsInWorkers(Compressor):
    """Raises when a process other than the one that built it trains with it."""

    stage = "prune"

    def setup(self, context: CompressionContext) -> None:
        self.home = os.getpid()

    def transform_parameters(self, params: Weights, step: StepContext) -> Weights:
        if self.home is not None and os.getpid() != self.home:
            raise RuntimeError("broken in a worker")
        return params


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_a_failing_worker_raises_in_the_parent_and_every_worker_stops():
    model = mlp()
    compressor = FailsInWorkers()
    compressor.setup(CompressionContext(model=model, num_rounds=1, teacher=None))
    trainer = make_trainer(model, "parallel", [compressor], workers=2)
    weights = {name: t.detach().clone() for name, t in model.state_dict().items()}
    with pytest.raises(WorkerError, match="broken in a worker") as raised:
        trainer.train_clients(weights, as_jobs(CLIENTS))
    assert isinstance(raised.value, FedsearchError)
    pool = _parallel._POOLS.get(trainer)
    assert pool is None or pool.pids == []
    assert [p for p in _children() if p.name.startswith("fedsearch-client")] == []
    compressor.home = None  # fixed: the next round starts a fresh pool and trains
    results = trainer.train_clients(weights, as_jobs(CLIENTS)).results
    assert len(results) == len(CLIENTS) and len(_parallel._POOLS[trainer].pids) == 2
    close_client_pool(trainer)


def _children():
    import multiprocessing

    return multiprocessing.active_children()


def test_the_pool_is_rebuilt_when_a_round_grows():
    trainer = make_trainer(mlp(), "parallel", workers=2)
    weights = {name: t.detach().clone() for name, t in mlp().state_dict().items()}
    trainer.train_clients(weights, as_jobs(CLIENTS[:2]))
    first = _parallel._POOLS[trainer].pids
    trainer.train_clients(weights, as_jobs(CLIENTS))
    assert _parallel._POOLS[trainer].pids != first
    assert not any(alive(pid) for pid in first)
    close_client_pool(trainer)


def test_clients_are_shared_out_by_their_number_of_batches():
    shares = balanced_shares([60, 5, 60, 30, 30, 1], 2)
    assert sorted(slot for share in shares for slot in share) == [0, 1, 2, 3, 4, 5]
    loads = [sum([60, 5, 60, 30, 30, 1][slot] for slot in share) for share in shares]
    assert sorted(loads) == [91, 95]  # costliest first, each to the lightest worker
    assert balanced_shares([3, 3], 4) == [[0], [1], [], []]


def test_auto_goes_parallel_only_for_enough_work_on_several_cores(monkeypatch):
    two_nn = nn.Sequential(nn.Linear(784, 200), nn.Linear(200, 200), nn.Linear(200, 10))
    round_2nn = [[torch.zeros(10, dtype=torch.long)] * 60 for _ in range(10)]  # 10 x 600 examples
    monkeypatch.setattr(_parallel, "usable_cores", lambda: 2)
    assert parallel_pays(two_nn, round_2nn, None)
    assert not parallel_pays(mlp(), round_2nn, None)  # 12 x 16 weights: too little work
    assert not parallel_pays(two_nn, round_2nn[:1], None)  # one client
    assert not parallel_pays(two_nn, round_2nn, 1)  # one worker asked for
    monkeypatch.setattr(_parallel, "usable_cores", lambda: 1)
    assert not parallel_pays(two_nn, round_2nn, None)


def test_rounds_in_workers_match_sequential_rounds_and_their_traffic(registry):
    def run(execution):
        generator = torch.Generator().manual_seed(0)
        inputs = torch.randn(240, 16, generator=generator)
        labels = torch.randint(0, 3, (240,), generator=generator)
        data = FederatedData(
            train_inputs=inputs,
            train_labels=labels,
            val_inputs=inputs[:40],
            val_labels=labels[:40],
            test_inputs=inputs[:40],
            test_labels=labels[:40],
            client_indices=[np.arange(start, start + 30) for start in range(0, 240, 30)],
            num_classes=3,
        )
        federation = FederationConfig(
            num_clients=8,
            rounds=3,
            fraction=0.5,
            batch_size=8,
            learning_rate=0.1,
            execution=execution,
            client_workers=2,
        )
        run = FederatedRun(
            data=data,
            federation=federation,
            strategy=registry.create("strategy", "fedavg"),
            downlink_codec=registry.create("codec", "float16"),
            uplink_codec=registry.create("codec", "topk", {"fraction": 0.2}),
            seed=3,
        )
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
        return run_federated(model, run)

    sequential, parallel = run("sequential"), run("parallel")
    assert [r.execution for r in parallel.history] == ["parallel"] * 3
    assert parallel.comm_bytes > 0
    assert (parallel.downlink_bytes, parallel.uplink_bytes) == (
        sequential.downlink_bytes,
        sequential.uplink_bytes,
    )
    assert [r.uplink_bytes for r in parallel.history] == [
        r.uplink_bytes for r in sequential.history
    ]
    for name, tensor in sequential.weights.items():
        torch.testing.assert_close(parallel.weights[name], tensor, rtol=1e-5, atol=1e-6)
    assert [p for p in _children() if p.name.startswith("fedsearch-client")] == []


WORKERS_THEN_WAIT = """
import sys, numpy as np, torch
from torch import nn
from fedsearch.federated import ClientJob, LocalTrainer
from fedsearch.federated import _parallel
model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 3))
inputs, labels = torch.randn(100000, 16), torch.randint(0, 3, (100000,))
trainer = LocalTrainer(model, inputs, labels, [], local_epochs=50, batch_size=1,
    learning_rate=0.01, generator=torch.Generator().manual_seed(0), execution="parallel",
    workers=2)
weights = {n: t.detach().clone() for n, t in model.state_dict().items()}
clients = [ClientJob(0, np.arange(0, 2)), ClientJob(1, np.arange(2, 4))]
trainer.train_clients(weights, clients)
print(*_parallel._POOLS[trainer].pids, flush=True)
halves = [ClientJob(0, np.arange(50000)), ClientJob(1, np.arange(50000, 100000))]
trainer.train_clients(weights, halves)  # minutes
"""


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGKILL])
def test_workers_never_outlive_an_interrupted_or_killed_parent(signal_number):
    parent = subprocess.Popen(
        [sys.executable, "-c", WORKERS_THEN_WAIT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C reaches the whole group: parent and workers
    )
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        os.killpg(parent.pid, signal_number) if signal_number == signal.SIGINT else parent.kill()
        parent.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in pids)
        if signal_number == signal.SIGINT:
            assert "KeyboardInterrupt" in parent.stderr.read()
    finally:
        if parent.poll() is None:
            parent.kill()
