"""Fill the ``search_quality.py --compute`` trajectory cache with parallel processes.

One process per (sampler, seed), each with its own cache, one thread each;
warm-start jobs start once the default-sampler jobs they replay have finished.
At the deadline running jobs stop (a cache is saved after every trial). The
caches are then merged (the longest trajectory of each selection) into the
cache ``search_quality.py --compute`` reads, so the one command below replays
every trajectory and prints the table (trajectories depend only on the
selection, so a replay gives what a single process would have computed)::

    python benchmarks/search_quality_parallel.py --problem mnist --workers 2
    python benchmarks/search_quality.py --compute --problem mnist --seeds 5 \\
        --samplers nsga2 rl_controller tpe random evolution --warm-start
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "search_quality.py"


def jobs(args: argparse.Namespace) -> list[tuple[str, list[str], list[str]]]:
    """(name, arguments, names of the jobs it waits for), most wanted first."""
    default, seeds = args.samplers[0], range(args.seeds)
    found = [
        (f"{default}_{seed}", ["--samplers", default, "--first-seed", str(seed)], [])
        for seed in [*seeds, args.seeds]
    ]  # seed + 1 is the warm start's earlier study
    found += [
        (f"{name}_{seed}", ["--samplers", name, "--first-seed", str(seed)], [])
        for name in args.samplers[1:2]
        for seed in seeds
    ]
    found += [
        (
            f"warm_{name}_{seed}",
            [
                "--samplers",
                default,
                "--warm-start",
                "--warm-samplers",
                name,
                "--first-seed",
                str(seed),
            ],
            [f"{default}_{seed}", f"{default}_{seed + 1}"],
        )
        for name in args.warm_samplers
        for seed in seeds
    ]
    found += [
        (f"{name}_{seed}", ["--samplers", name, "--first-seed", str(seed)], [])
        for name in args.samplers[2:]
        for seed in seeds
    ]
    return found


def merged(paths: Iterable[Path]) -> dict:
    """Every cache's trajectories; of two for one selection, the longer (more sizes on a tie)."""
    entries: dict = {}
    for path in paths:
        if not path.exists():
            continue
        for key, entry in json.loads(path.read_text()).items():
            old = entries.get(key)
            if old is None or (len(entry["history"]), len(entry["sizes"])) > (
                len(old["history"]),
                len(old["sizes"]),
            ):
                entries[key] = entry
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", choices=["quickstart", "mnist"], default="mnist")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--samplers", nargs="+", default=["nsga2", "rl_controller", "tpe", "random", "evolution"]
    )
    parser.add_argument("--warm-samplers", nargs="+", default=["nsga2", "tpe"])
    parser.add_argument("--pruner-params", default="{}")
    parser.add_argument("--deadline", type=float, default=float("inf"), help="seconds")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "benchmarks" / "parallel")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    common = [
        "--compute",
        "--problem",
        args.problem,
        "--seeds",
        "1",
        "--trials",
        "50",
        "--pruned-trials",
        "200",
        "--pruner-params",
        args.pruner_params,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    pending, running, done = jobs(args), {}, set()
    started = time.time()

    def log(text: str) -> None:
        print(f"{time.time() - started:6.0f} s  {text}", file=sys.stderr, flush=True)

    while (pending or running) and time.time() - started < args.deadline:
        for name, process in list(running.items()):
            if process.poll() is not None:
                done.add(name)
                del running[name]
                log(f"done {name} (exit {process.returncode})")
        for job in list(pending):
            name, extra, needs = job
            if len(running) >= args.workers:
                break
            if not all(need in done for need in needs):
                continue
            pending.remove(job)
            cache = args.work / f"cache_{name}.json"
            if needs:
                cache.write_text(json.dumps(merged(args.work / f"cache_{n}.json" for n in needs)))
            command = [sys.executable, str(SCRIPT), *common, *extra, "--cache", str(cache)]
            with open(args.work / f"{name}.log", "w") as output:
                running[name] = subprocess.Popen(command, env=env, stdout=output, stderr=output)
            log(f"start {name}")
        time.sleep(1)
    for name, process in running.items():
        process.kill()
        process.wait()
        log(f"stopped {name} at the deadline")
    if pending:
        log(f"not started: {', '.join(job[0] for job in pending)}")
    target = REPO / "runs" / "benchmarks" / f"search_compute_{args.problem}.json"
    entries = merged([target, *sorted(args.work.glob("cache_*.json"))])
    target.write_text(json.dumps(entries))
    log(f"{len(entries)} trajectories in {target}")


if __name__ == "__main__":
    main()
