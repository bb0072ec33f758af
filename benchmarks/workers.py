"""Two worker processes against one: wall time to finish the quickstart's trial budget.

Run from the repository root, on an otherwise idle machine:

    python benchmarks/workers.py                  # 30 trials (the quickstart budget)
    python benchmarks/workers.py --compare-threads  # also: one worker at 1, 2 and torch's threads

In a fresh folder it first trains the quickstart teacher once, outside the
timing (it is cached in the database and shared by every study there). Then
it times, from process start to exit (imports, data loading, teacher loading
included), ``fedsearch run`` of the quickstart with one worker, and with two
worker processes started together on a new study of the same database
(SQLite, the README's default storage). Each worker uses ``--threads``
PyTorch threads (default 1, the ``fedsearch run`` default).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

from fedsearch import get_registry, resolve_study
from fedsearch.study import prepare_runtime

REPO = Path(__file__).resolve().parents[1]
FEDSEARCH = str(Path(sys.executable).with_name("fedsearch"))


def study_file(folder: Path, n_trials: int) -> Path:
    """The quickstart study with an absolute search-space path and the given budget."""
    text = (REPO / "studies" / "quickstart.toml").read_text()
    space = (REPO / "search_spaces" / "default.toml").as_posix()
    text = text.replace('space = "../search_spaces/default.toml"', f'space = "{space}"')
    text = text.replace("n_trials = 30", f"n_trials = {n_trials}")
    path = folder / "quickstart.toml"
    path.write_text(text)
    return path


def run_workers(
    path: Path, folder: Path, name: str, workers: int, threads: int
) -> tuple[float, float]:
    """Start ``workers`` processes on study ``name``.

    Returns:
        The wall time until all exit, and the CPU time (user + system) they used.
    """
    command = [FEDSEARCH, "run", str(path), "--study-name", name, "--threads", str(threads)]
    env = os.environ | {"OMP_NUM_THREADS": str(threads or os.cpu_count())}
    cpu_before = _children_cpu()
    started = time.perf_counter()
    processes = [
        subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a worker of {name} failed with status {process.returncode}")
    return time.perf_counter() - started, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def describe(storage: str, name: str) -> str:
    study = optuna.load_study(study_name=name, storage=storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    workers = Counter(trial.user_attrs["worker"] for trial in complete)
    return f"{len(complete)} complete, per worker {sorted(workers.values(), reverse=True)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=30, help="the study budget (default 30)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument(
        "--compare-threads",
        action="store_true",
        help="also time one worker at 1, 2, default threads",
    )
    parser.add_argument("--threads-only", action="store_true", help="only the threads comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        path = study_file(folder, args.n_trials)
        os.chdir(folder)  # outputs (runs/) go to the temporary folder
        study = resolve_study(path, get_registry())
        storage = study.storage_url
        started = time.perf_counter()
        prepare_runtime(study)  # trains and caches the teacher: not part of the timing
        print(f"teacher trained once before timing: {time.perf_counter() - started:.1f} s")
        if not args.threads_only:
            one, cpu = run_workers(path, folder, "one-worker", 1, args.threads)
            print(f"1 worker : {one:6.1f} s wall, {cpu:6.1f} s CPU, ", end="")
            print(describe(storage, "one-worker"))
            two, cpu = run_workers(path, folder, "two-workers", 2, args.threads)
            print(f"2 workers: {two:6.1f} s wall, {cpu:6.1f} s CPU, ", end="")
            print(describe(storage, "two-workers"))
            print(
                f"speedup: {one / two:.2f}x (target at least 1.7x), {args.threads} thread(s) each"
            )
        if args.compare_threads or args.threads_only:
            for threads in (1, 2, 0):
                wall, cpu = run_workers(path, folder, f"threads-{threads}", 1, threads)
                label = "torch default" if threads == 0 else f"{threads} thread(s)"
                print(f"1 worker, {label}: {wall:6.1f} s wall, {cpu:6.1f} s CPU")


if __name__ == "__main__":
    main()
