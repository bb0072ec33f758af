"""Training a round's clients in parallel worker processes (``execution = "parallel"``).

A ``ClientPool`` lives as long as the trainer that owns it (one trial): its
workers are forked once, each with one intra-op thread, and share with the
parent, in shared memory, the training data (``share_memory_``), the round's
global weights (written by the parent once per round) and one result row per
client (written by the worker that trained it). The parent draws every
client's shuffles from the trial's generator exactly as the sequential path
does and shares a round's clients out among the workers; each client is
trained by the sequential path's own code on one thread, so the result does
not depend on the number of workers or on which worker trained which client.
Per round, the model and the compressors travel pickled (they
change between rounds: masks, schedules, restructured modules).

Why a hand-written pool, not ``torch.multiprocessing.Pool`` or ``concurrent.futures``:
those pickle every task's arguments and results (a model-sized tensor per client)
and keep no per-worker state (data on the worker's device, one thread); here only
index arrays and losses cross the pipes.

Workers ignore SIGINT (Ctrl-C reaches the parent, which stops them), exit
when the parent dies, and are terminated when the pool closes: explicitly
(``close_client_pool``), when its trainer is garbage-collected, or at exit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import traceback
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fedsearch._errors import FedsearchError
from fedsearch.components import Weights
from fedsearch.federated._device import worker_devices
from fedsearch.federated._functional import ClientJob, LocalSGD

if TYPE_CHECKING:
    from fedsearch.federated._training import LocalTrainer

ClientResult = tuple[Weights, float]
Layout = tuple[tuple[str, tuple[int, ...], torch.dtype], ...]

PARENT_POLL_SECONDS = 1.0
"""How often an idle worker checks that its parent is still alive."""

STOP_GRACE_SECONDS = 2.0
"""How long a closing pool waits for a worker to exit before terminating it."""


class WorkerError(FedsearchError):
    """A client-training worker process failed or died."""


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


PARALLEL_MIN_ROUND_WORK = 1_000_000_000
"""Least examples x parameters of a round that ``auto`` trains in parallel workers."""


def parallel_pays(
    model: torch.nn.Module, client_batches: Sequence[Sequence[torch.Tensor]], workers: int | None
) -> bool:
    """Whether ``auto`` trains this round in worker processes.

    It does when at least two workers would have clients and the round's work,
    examples x model parameters (a forward pass's multiply-adds for a dense
    layer; less than a convolution's), is at least ``PARALLEL_MIN_ROUND_WORK``:
    below that, the per-round cost of the workers (pickling the model and
    compressors, the pipe round trips, copying results) outweighs the cores
    gained. The threshold comes from ``benchmarks/execution_paths.py`` (see
    RESULTS.md). It depends only on the model, the round and the machine's
    core count, so a trial stays deterministic on one machine.
    """
    if min(workers or usable_cores(), len(client_batches)) < 2:
        return False
    examples = sum(len(batch) for batches in client_batches for batch in batches)
    return examples * sum(p.numel() for p in model.parameters()) >= PARALLEL_MIN_ROUND_WORK


def parallel_state(
    trainer: LocalTrainer, client_batches: Sequence[Sequence[torch.Tensor]]
) -> bytes | None:
    """The pickled round state when this round trains in workers, else None.

    ``parallel`` trains in workers whenever the state pickles, ``auto`` when
    ``parallel_pays`` too or the study's device is a GPU (clients then train
    on the GPUs, in workers spread over them, while the channel, aggregation
    and evaluation stay in the parent, on the CPU); otherwise the round trains
    in-process.
    """
    requested = trainer.execution
    on_gpu = trainer.device is not None and trainer.device.type == "cuda"
    if requested == "parallel" or (
        requested == "auto"
        and (on_gpu or parallel_pays(trainer.model, client_batches, trainer.workers))
    ):
        return pickled_state(trainer)
    return None


def pickled_state(trainer: LocalTrainer) -> bytes | None:
    """The trainer's class, model, compressors and step settings as one pickle, or None.

    One pickle keeps shared references intact (a compressor holding the model
    gets the worker's copy of that model). Compressors that hold live objects
    such as forward hooks do not pickle, and their rounds train in-process; so
    do rounds whose clients carry per-client state (``Compressor.client_state``),
    which lives in the parent's runtime and never travels to a worker.
    """
    steps = {"learning_rate": trainer.learning_rate, "max_grad_norm": trainer.max_grad_norm}
    state = (type(trainer), trainer.model, trainer.compressors, steps)
    try:
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def default_start_method(device: torch.device) -> str:
    """``fork`` for CPU workers where the OS has it (instant, nothing re-imported);
    ``spawn`` for GPU workers, since CUDA does not survive a fork."""
    fork = "fork" in multiprocessing.get_all_start_methods()
    return "fork" if device.type == "cpu" and fork else "spawn"


def balanced_shares(costs: Sequence[int], workers: int) -> list[list[int]]:
    """Clients (by position) per worker, each client to the least loaded worker so far,
    costliest first (longest-processing-time scheduling). Which worker trains a
    client never changes its result; one message per worker and round keeps the
    pipe round trips (slow on a loaded machine) to two per worker."""
    shares: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for slot in sorted(range(len(costs)), key=lambda slot: -costs[slot]):
        lightest = loads.index(min(loads))
        shares[lightest].append(slot)
        loads[lightest] += costs[slot]
    return [sorted(share) for share in shares]


def _task(
    slot: int, client: int, batches: Sequence[torch.Tensor]
) -> tuple[int, int, np.ndarray, list[int]]:
    positions = torch.cat(list(batches)).numpy() if batches else np.zeros(0, np.int64)
    return slot, client, positions, [len(batch) for batch in batches]


def _layout(weights: Weights) -> Layout:
    return tuple((name, tuple(t.shape), t.dtype) for name, t in weights.items())


def _shared_like(weights: Weights, rows: int | None = None) -> Weights:
    leading = () if rows is None else (rows,)
    return {
        name: torch.zeros((*leading, *t.shape), dtype=t.dtype).share_memory_()
        for name, t in weights.items()
    }


class ClientPool:
    """Worker processes that train clients from shared weights on shared data.

    Args:
        inputs: All training examples (moved to shared memory once).
        labels: Their labels.
        weights: Weights of the shape the pool's rounds use (its buffers' layout).
        capacity: Most clients one round may hand the pool.
        workers: How many worker processes.
        device: The study's device; workers spread over its GPUs.
        start_method: How workers start; ``default_start_method(device)`` if omitted.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        weights: Weights,
        *,
        capacity: int,
        workers: int,
        device: torch.device | None = None,
        start_method: str | None = None,
    ) -> None:
        device = device or torch.device("cpu")
        context = torch.multiprocessing.get_context(start_method or default_start_method(device))
        self.layout = _layout(weights)
        self.capacity = capacity
        self.start = _shared_like(weights)
        self.results = _shared_like(weights, capacity)
        self._connections: list[Connection] = []
        self._processes = []
        data = (inputs.cpu().share_memory_(), labels.cpu().share_memory_())
        for index, worker_device in enumerate(worker_devices(device, workers)):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker_main,
                args=(child_end, data, self.start, self.results, str(worker_device), os.getpid()),
                name=f"fedsearch-client-worker-{index}",
                daemon=True,
            )
            process.start()
            child_end.close()
            self._connections.append(parent_end)
            self._processes.append(process)

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [process.pid for process in self._processes]

    def fits(self, weights: Weights, num_clients: int) -> bool:
        """Whether this pool is running and its buffers hold ``weights`` and ``num_clients``
        results."""
        running = bool(self._processes)
        return running and self.layout == _layout(weights) and num_clients <= self.capacity

    def train(
        self,
        state: bytes,
        weights: Weights,
        client_batches: Sequence[Sequence[torch.Tensor]],
        clients: Sequence[int],
        sgd: LocalSGD,
    ) -> list[ClientResult]:
        """Train every client from ``weights``; its new weights and mean loss, in client order.

        Raises:
            WorkerError: A worker raised (its traceback in the message) or died;
                the pool is closed first.
        """
        for name, tensor in weights.items():
            self.start[name].copy_(tensor)
        losses: dict[int, float] = {}
        shares = balanced_shares([len(batches) for batches in client_batches], len(self._processes))
        try:
            busy = []
            for connection, slots in zip(self._connections, shares, strict=True):
                if slots:
                    tasks = [_task(slot, clients[slot], client_batches[slot]) for slot in slots]
                    settings = (sgd.proximal_mu, sgd.round)
                    connection.send_bytes(pickle.dumps(("round", state, settings, tasks)))
                    busy.append(connection)
            while busy:
                busy = self._collect(busy, losses)
        except BaseException:
            self.close()
            raise
        return [
            ({name: rows[slot].clone() for name, rows in self.results.items()}, losses[slot])
            for slot in range(len(client_batches))
        ]

    def _collect(self, busy: list[Connection], losses: dict[int, float]) -> list[Connection]:
        ready = wait(busy, timeout=PARENT_POLL_SECONDS)
        if not ready:
            dead = [p.name for p in self._processes if not p.is_alive()]
            if dead:
                raise WorkerError(f"client worker {dead[0]} exited unexpectedly")
        for connection in ready:
            try:
                kind, payload = pickle.loads(connection.recv_bytes())
            except EOFError:
                raise WorkerError("a client worker exited unexpectedly") from None
            if kind == "error":
                raise WorkerError(f"a client worker failed:\n{payload}")
            losses.update(payload)
        return [connection for connection in busy if connection not in ready]

    def close(self) -> None:
        """Stop the workers (politely, then by force); safe to call twice."""
        for connection in self._connections:
            with contextlib.suppress(OSError, ValueError):  # a worker already gone
                connection.send_bytes(pickle.dumps(("stop",)))
        for process in self._processes:
            process.join(STOP_GRACE_SECONDS)
            if process.is_alive():
                process.terminate()
                process.join()
        for connection in self._connections:
            connection.close()
        self._connections, self._processes = [], []


def _worker_main(
    connection: Connection,
    data: tuple[torch.Tensor, torch.Tensor],
    start: Weights,
    results: Weights,
    device_name: str,
    parent_pid: int,
) -> None:
    """A worker's loop: one round message, then clients, until ``stop`` or the parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    device = torch.device(device_name)
    inputs, labels = (tensor.to(device) for tensor in data)
    while True:
        while not connection.poll(PARENT_POLL_SECONDS):
            if os.getppid() != parent_pid:
                return
        try:
            message = pickle.loads(connection.recv_bytes())
        except EOFError:
            return
        if message[0] == "stop":
            return
        _, state, (proximal_mu, round_index), tasks = message
        try:
            trainer = _round_trainer(state, inputs, labels, device)
            sgd = LocalSGD(trainer.model, inputs, labels, trainer.compressors,
                           trainer.learning_rate, proximal_mu, round_index,
                           trainer.max_grad_norm)  # fmt: skip
            losses = {}
            for slot, client, positions, sizes in tasks:
                batches = list(torch.from_numpy(positions).split(sizes))
                weights = {name: tensor.to(device) for name, tensor in start.items()}
                job = ClientJob(client, positions)  # workers serve stateless clients only
                local, losses[slot] = trainer._train_one(sgd, weights, batches, job)
                for name, tensor in local.items():
                    results[name][slot].copy_(tensor)
            reply: tuple[str, Any] = ("done", losses)
        except Exception:  # every failure goes back to the parent
            reply = ("error", traceback.format_exc())
        connection.send_bytes(pickle.dumps(reply))


def _round_trainer(
    state: bytes, inputs: torch.Tensor, labels: torch.Tensor, device: torch.device
) -> LocalTrainer:
    trainer_class, model, compressors, steps = pickle.loads(state)
    trainer = trainer_class(
        model.to(device), inputs, labels, compressors, local_epochs=1, batch_size=1,
        generator=torch.Generator(), execution="sequential", **steps,
    )  # fmt: skip
    trainer.model.train()
    return trainer


_POOLS: weakref.WeakKeyDictionary[LocalTrainer, ClientPool] = weakref.WeakKeyDictionary()


def train_parallel(
    trainer: LocalTrainer,
    state: bytes,
    weights: Weights,
    client_batches: Sequence[Sequence[torch.Tensor]],
    clients: Sequence[int],
    sgd: LocalSGD,
) -> list[ClientResult]:
    """Train a round's clients in ``trainer``'s pool of workers (started on first use).

    Args:
        trainer: Owner of the pool: data, settings, worker count and device.
        state: ``pickled_state(trainer)`` of this round.
        weights: The global weights every client starts from.
        client_batches: Per client, its batches of example positions, in order.
        clients: The clients' ids, in the same order (their step contexts).
        sgd: The round's local SGD settings (round index, FedProx coefficient).
    """
    pool = _POOLS.get(trainer)
    if pool is not None and not pool.fits(weights, len(client_batches)):
        close_client_pool(trainer)  # the model was restructured, or the round grew
        pool = None
    if pool is None:
        workers = min(trainer.workers or usable_cores(), len(client_batches))
        pool = ClientPool(
            trainer.inputs,
            trainer.labels,
            weights,
            capacity=len(client_batches),
            workers=max(workers, 1),
            device=trainer.device,
        )
        _POOLS[trainer] = pool
        weakref.finalize(trainer, pool.close)
    return pool.train(state, weights, client_batches, clients, sgd)


def close_client_pool(trainer: LocalTrainer) -> None:
    """Stop ``trainer``'s worker processes, if it has any."""
    pool = _POOLS.pop(trainer, None)
    if pool is not None:
        pool.close()
