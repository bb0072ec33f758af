"""Several workers on one study: heartbeat storage, storage-wide locks, the shared budget.

Every worker runs the same ``fedsearch run`` against the same storage URL.
Running trials send heartbeats; a trial whose worker died (no heartbeat for
the grace period) is failed by the next worker that looks and re-queued with
the same params. Decisions that must not race between workers (claiming a
trial of the budget, training the teacher) happen under a lock that lives in
the storage: a PostgreSQL advisory lock, or a file lock beside a SQLite file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import sqlite3
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from enum import Enum
from functools import cache, lru_cache
from pathlib import Path
from typing import IO, Any

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState
from sqlalchemy.pool import NullPool

from fedsearch.config import WorkersConfig
from fedsearch.study._rounding import round_to_step

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
RETRY_OF_ATTR = "retry_of"
WAIT_POLL_S = 0.5


def worker_id() -> str:
    """``host:pid`` of this process, recorded on every trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def open_storage(url: str, workers: WorkersConfig | None = None) -> optuna.storages.RDBStorage:
    """Connect to an RDB storage with heartbeats and retries of stale trials.

    Creates the folder of a SQLite file if needed, and Optuna's tables under
    a storage lock (workers starting together on an empty database would
    otherwise race to create them). ``workers`` None opens it without
    heartbeats (for reading).
    """
    kwargs: dict[str, Any] = {"engine_kwargs": {}}
    if _backend(url) == "sqlite":
        ensure_sqlite_folder(url)
        kwargs["engine_kwargs"]["connect_args"] = {"timeout": 60}  # one file, many writers
    if workers is not None:
        kwargs |= {
            "heartbeat_interval": workers.heartbeat_interval,
            "grace_period": workers.grace_period,
            "heartbeat_stale_trial_callback": RequeueStaleTrial(workers.max_retry),
        }
    with StorageLock(url, "fedsearch-schema"), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, **kwargs)


class RequeueStaleTrial:
    """Re-queue a trial whose worker died, with the same params, at most ``max_retry`` times.

    Like Optuna's ``RetryHeartbeatStaleTrialCallback`` (same system attributes,
    so its ``retried_trial_number`` and ``retry_history`` work), but the new
    trial does not inherit the dead trial's user attributes; it records
    ``retry_of`` (the original trial number) instead.
    """

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Add the WAITING copy of ``trial`` that the next free worker runs."""
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > self.max_retry:
            return
        original = trial.system_attrs.get("failed_trial", trial.number)
        study.add_trial(
            optuna.create_trial(
                state=TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={RETRY_OF_ATTR: original},
                system_attrs={"failed_trial": original, "retry_history": history},
            )
        )


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite database file (nothing for other back ends).

    The database is switched to write-ahead logging (a persistent setting), so
    that readers (other workers, the dashboard) never wait for a writer.
    """
    if _backend(url) != "sqlite":
        return
    database = sqlalchemy.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(database, timeout=60)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the running trials whose worker stopped sending heartbeats (and re-queue them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class StorageLock:
    """A lock shared by every process that uses one storage URL.

    PostgreSQL: a session advisory lock (``pg_advisory_lock``) on its own
    connection. SQLite: ``flock`` on a file beside the database. Both are
    released by the operating system or the server when the process dies.
    Other back ends get a process-local lock (a warning says so).

    Args:
        url: The storage URL.
        name: What is locked; processes that use the same name exclude each other.
    """

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self._connection: sqlalchemy.Connection | None = None
        self._file: IO[bytes] | None = None
        self._local: threading.Lock | None = None
        self._key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)

    def acquire(self) -> None:
        """Block until this process holds the lock."""
        backend = _backend(self.url)
        if backend == "postgresql":
            connection = _engine(self.url).connect()
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
            connection.commit()
            self._connection = connection
            return
        database = sqlalchemy.make_url(self.url).database if backend == "sqlite" else None
        if database and database != ":memory:":
            digest = hashlib.sha256(self.name.encode()).hexdigest()[:12]
            handle = Path(f"{database}.lock-{digest}").open("a+b")  # noqa: SIM115 (held open)
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._file = handle
            return
        if backend != "sqlite":
            warnings.warn(
                f"no cross-process lock for {backend} storage: run one worker per study, or "
                "use PostgreSQL",
                stacklevel=2,
            )
        self._local = _local_lock(self.url, self.name)
        self._local.acquire()

    def release(self) -> None:
        """Release the lock if held (calling it twice is harmless)."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key}
                )
                connection.commit()
            finally:
                connection.close()
        if self._file is not None:
            handle, self._file = self._file, None
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        if self._local is not None:
            lock, self._local = self._local, None
            lock.release()

    def __enter__(self) -> StorageLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


@lru_cache(maxsize=8)
def _engine(url: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(url, poolclass=NullPool)


@cache
def _local_lock(url: str, name: str) -> threading.Lock:
    return threading.Lock()


def _backend(url: str) -> str:
    return sqlalchemy.make_url(url).get_backend_name()


class Decision(Enum):
    """What a worker does next."""

    RUN = "run"
    WAIT = "wait"
    DONE = "done"


@dataclass(frozen=True)
class StudyBudget:
    """The study's trial budget, shared by all its workers.

    A worker may start a trial while finished, running and queued trials
    together stay under ``n_trials``, or when a queued (retried) trial waits.
    While running trials could still fail and free their place, it waits.
    The decision and the trial's creation happen under one storage lock, so
    N workers together finish exactly ``n_trials`` trials.
    """

    n_trials: int

    def decide(self, study: optuna.Study) -> Decision:
        """Run, wait for running trials, or stop."""
        counts = Counter(trial.state for trial in study.get_trials(deepcopy=False))
        finished = sum(counts[state] for state in FINISHED_STATES)
        if finished >= self.n_trials:
            return Decision.DONE
        if counts[TrialState.WAITING] or finished + counts[TrialState.RUNNING] < self.n_trials:
            return Decision.RUN
        return Decision.WAIT

    def remaining(self, study: optuna.Study) -> int:
        """Finished trials still missing."""
        finished = len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
        return max(0, self.n_trials - finished)


def wait_for_running_trials(study: optuna.Study) -> None:
    """One polling step while other workers' trials run: fail those whose worker died."""
    fail_stale_trials(study)
    time.sleep(WAIT_POLL_S)


SamplerFactory = Callable[[int | None], optuna.samplers.BaseSampler]


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Gives every trial a fresh sampler seeded from the study seed and the trial number.

    Optuna's samplers keep their state in the storage, but their random
    generator lives in the process: two workers built with one seed would
    propose the very same params. Seeding trial ``n`` with ``seed + n`` makes
    its proposal independent of which worker draws it (given the trials
    finished so far), and one worker fully reproducible.

    Args:
        factory: Builds the configured sampler for a seed.
        seed: The study seed (None: not reproducible).
    """

    def __init__(self, factory: SamplerFactory, seed: int | None) -> None:
        self._factory = factory
        self._seed = seed
        self._current = factory(seed)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Build the sampler of this trial."""
        seed = None
        if self._seed is not None:
            seed = (self._seed + trial.number) % 2**32
        self._current = self._factory(seed)
        self._current.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """Delegate to the trial's sampler."""
        return self._current.infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        """Delegate to the trial's sampler; stepped floats rounded to their step."""
        sampled = self._current.sample_relative(study, trial, search_space)
        return {name: round_to_step(v, search_space[name]) for name, v in sampled.items()}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Delegate to the trial's sampler; a stepped float rounded to its step."""
        value = self._current.sample_independent(study, trial, param_name, param_distribution)
        return round_to_step(value, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Delegate to the trial's sampler."""
        self._current.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to do: every trial is seeded from its number."""
