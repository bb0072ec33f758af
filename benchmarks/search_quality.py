"""Search quality: hypervolume after N trials for each sampler, against random search.

Run from the repository root:

    python benchmarks/search_quality.py                  # 50 trials, seeds 0-4
    python benchmarks/search_quality.py --seeds 3 --samplers nsga2 random

The problem is quickstart-sized: the bundled digits, 10 clients, half of them
per round, the default search space (three student families, pruning,
quantization, distillation), with distillation's continuous knobs put on a
grid and fewer rounds (10) so that the whole benchmark stays cheap. A trial's
objectives depend only on its selection (the study seed is fixed), so every
evaluation is cached on disk, keyed by the selection, and shared by all
samplers and seeds: re-runs, and samplers that revisit a point, cost nothing.

Hypervolume is measured in the space (1 - val_accuracy, log10 model_bytes,
log10 comm_bytes), all minimised, against the fixed reference point
(1.0, log10 128 KiB, log10 64 MiB); trials outside the box add nothing.

``--compute`` measures hypervolume as a function of compute (client-rounds
trained, and wall time) with and without multi-fidelity pruning (the
``pareto_asha`` pruner at its defaults, or ``--pruner-params``), on this
problem (``--problem quickstart``) or a harder MNIST one (``--problem mnist``,
see ``_search_compute.MNIST_STUDY``); ``--warm-start`` adds runs of
``--warm-samplers`` warm-started from the unpruned first sampler's study at the
next seed (an earlier study of the same problem)::

    python benchmarks/search_quality.py --compute --problem quickstart --seeds 5 \
        --samplers nsga2 random tpe evolution rl_controller

``search_quality_parallel.py`` fills the trajectory cache with one process per
(sampler, seed); the same command then replays it.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import _search_compute as compute
import numpy as np
import optuna
from _federation import default_data_dir
from optuna._hypervolume import compute_hypervolume  # Optuna's own WFG implementation

from fedsearch import get_registry, resolve_study
from fedsearch.study import prepare_runtime
from fedsearch.study._warm_start import WarmStart, sampler_factory, warm_start_from
from fedsearch.trial import evaluate_selection

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "runs" / "benchmarks" / "search_quality_cache.json"
REFERENCE = np.array([1.0, math.log10(128 * 1024), math.log10(64 * 1024 * 1024)])
SAMPLERS = ["nsga2", "nsga3", "tpe", "gp", "evolution", "random"]
STOCK_NSGA2 = "nsga2_stock"
"""Optuna's NSGAIISampler as shipped (population 10), to show what conditional inheritance adds."""

STUDY = f"""
name = "search-quality"
seed = 0
output_dir = "{{output}}"

[dataset]
name = "digits"
val_fraction = 0.15

[federation]
num_clients = 10
rounds = 10
fraction = 0.5
local_epochs = 2
batch_size = 16
learning_rate = 0.3

[teacher]
architecture = {{{{ name = "mlp", params = {{{{ widths = [256, 256] }}}} }}}}
rounds = 40

[search]
space = "{(REPO / "search_spaces" / "default.toml").as_posix()}"
sampler = {{{{ name = "{{sampler}}" }}}}

[search.dimensions]
"distill.soft_target.temperature" = {{{{ choices = [1.0, 2.0, 4.0, 8.0] }}}}
"distill.soft_target.alpha" = {{{{ choices = [0.3, 0.5, 0.7] }}}}
"""


def hypervolume(
    values: list[tuple[float, float, float]], reference: np.ndarray = REFERENCE
) -> float:
    """Hypervolume of (accuracy, model bytes, comm bytes) triples against ``reference``."""
    points = np.array(
        [[1.0 - acc, math.log10(model), math.log10(comm)] for acc, model, comm in values]
    )
    inside = points[np.all(points < reference, axis=1)] if len(points) else points
    if len(inside) == 0:
        return 0.0
    return float(compute_hypervolume(inside, reference))


class CachedEvaluator:
    """Evaluates selections once, remembering results on disk by selection."""

    def __init__(self, runtime: object) -> None:
        self.runtime = runtime
        self.cache: dict[str, list[float]] = json.loads(CACHE.read_text()) if CACHE.exists() else {}
        self.evaluated = 0

    def __call__(self, selection: object) -> tuple[float, float, float]:
        key = json.dumps(selection.as_dict(), sort_keys=True)
        if key not in self.cache:
            outcome = evaluate_selection(self.runtime, selection)
            self.cache[key] = [
                outcome.val_accuracy,
                float(outcome.model_bytes),
                float(outcome.comm_bytes),
            ]
            self.evaluated += 1
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            CACHE.write_text(json.dumps(self.cache))
        acc, model, comm = self.cache[key]
        return acc, model, comm


def make_sampler(name: str, studies: dict, seed: int) -> optuna.samplers.BaseSampler:
    if name == STOCK_NSGA2:
        return optuna.samplers.NSGAIISampler(population_size=10, seed=seed)
    return studies[name].sampler.build().create(seed=seed)


def run_one(name: str, seed: int, trials: int, studies: dict, evaluate: CachedEvaluator) -> float:
    study = studies["random" if name == STOCK_NSGA2 else name]
    optuna_study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"],
        sampler=make_sampler(name, studies, seed),
    )
    for _ in range(trials):
        trial = optuna_study.ask()
        values = evaluate(study.space.suggest(trial))
        optuna_study.tell(trial, list(values))
    return hypervolume([tuple(t.values) for t in optuna_study.trials])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--samplers", nargs="+", default=[*SAMPLERS, STOCK_NSGA2], help="random is always run"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--compute", action="store_true", help="hypervolume vs compute")
    parser.add_argument("--problem", choices=["quickstart", "mnist"], default="quickstart")
    parser.add_argument(
        "--pruned-trials", type=int, default=200, help="trial cap of pruned runs (--compute)"
    )
    parser.add_argument(
        "--pruned-budget",
        type=float,
        default=1.0,
        help="pruned runs stop after this share of the unpruned runs' client-rounds (--compute)",
    )
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run: first-seed onwards")
    parser.add_argument("--cache", type=Path, help="trajectory cache file (--compute)")
    parser.add_argument(
        "--pruner-params", type=json.loads, default={}, help="pareto_asha params, JSON (--compute)"
    )
    parser.add_argument(
        "--warm-start",
        action="store_true",
        help="also warm-start --warm-samplers from the unpruned first sampler's study at seed + 1",
    )
    parser.add_argument("--warm-samplers", nargs="+", default=["nsga2", "tpe"])
    parser.add_argument("--device", help="federation.device of the studies (--compute)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.compute:
        run_compute(args)
        return
    registry = get_registry()
    with tempfile.TemporaryDirectory() as folder:
        studies = {}
        for name in {*args.samplers, "random"} - {STOCK_NSGA2}:
            path = Path(folder) / f"{name}.toml"
            path.write_text(STUDY.format(output=f"{folder}/runs", sampler=name))
            studies[name] = resolve_study(path, registry)
        evaluate = CachedEvaluator(prepare_runtime(studies["random"]))
        results: dict[str, list[float]] = {}
        for name in [*args.samplers, *(["random"] if "random" not in args.samplers else [])]:
            started = time.perf_counter()
            results[name] = [
                run_one(name, seed, args.trials, studies, evaluate) for seed in range(args.seeds)
            ]
            print(
                f"{name}: {np.mean(results[name]):.4f} {np.round(results[name], 4).tolist()} "
                f"({time.perf_counter() - started:.0f} s, {evaluate.evaluated} new evaluations)",
                file=sys.stderr,
                flush=True,
            )
    random_mean = float(np.mean(results["random"]))
    print(f"hypervolume after {args.trials} trials, mean over seeds 0-{args.seeds - 1}")
    print("| sampler | mean hypervolume | std | vs random | per seed |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in results.items():
        print(
            f"| {name} | {np.mean(values):.4f} | {np.std(values):.4f} | "
            f"{np.mean(values) / random_mean:.3f}x | "
            f"{', '.join(f'{v:.3f}' for v in values)} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"trials": args.trials, "results": results}, indent=2))


def compute_problem(name: str, folder: str, sampler: str) -> tuple[str, np.ndarray]:
    """The study text and the fixed hypervolume reference point of a ``--compute`` problem."""
    if name == "quickstart":
        return STUDY.format(output=f"{folder}/runs", sampler=sampler), REFERENCE
    train, test = compute.mnist_subset(Path(folder), Path(default_data_dir()) / "mnist")
    text = compute.MNIST_STUDY.format(
        output=f"{folder}/runs",
        train=train.as_posix(),
        test=test.as_posix(),
        space=(REPO / "search_spaces" / "default.toml").as_posix(),
        sampler=sampler,
    )
    return text, compute.MNIST_REFERENCE


def run_compute(args: argparse.Namespace) -> None:
    """Hypervolume vs client-rounds for each sampler, unpruned and pruned (and warm-started)."""
    registry = get_registry()
    cache = compute.TrajectoryCache.load(
        args.cache or CACHE.with_name(f"search_compute_{args.problem}.json")
    )
    samplers = list(
        dict.fromkeys([*args.samplers, *(args.warm_samplers if args.warm_start else [])])
    )
    with tempfile.TemporaryDirectory() as folder:
        studies = {}
        for name in samplers:
            text, reference = compute_problem(args.problem, folder, name)
            if args.device is not None:
                text = f'device = "{args.device}"\n{text}'
            path = Path(folder) / f"{name}.toml"
            path.write_text(text)
            studies[name] = resolve_study(path, registry)
        first = studies[args.samplers[0]]
        runtime = prepare_runtime(first)
        federation = first.config.federation
        per_round = max(1, round(federation.fraction * federation.num_clients))
        budget = args.trials * federation.rounds * per_round
        pruner = registry.create("pruner", compute.PRUNER["name"], args.pruner_params)
        print(f"pruner {compute.PRUNER['name']} {pruner.params.model_dump()}", file=sys.stderr)
        measure = tuple(range(1, federation.rounds))  # replayable under any rungs

        def run(name: str, seed: int, pruned: bool, warm: WarmStart | None = None) -> tuple:
            study = studies[name]
            return compute.curve(
                study,
                runtime,
                cache,
                sampler_factory(study, warm)(seed),
                pruner if pruned else None,
                trials=args.pruned_trials if pruned else args.trials,
                budget=budget * (args.pruned_budget if pruned else 1.0),
                hypervolume=lambda points: hypervolume(points, reference),
                measure=measure,
                warm=warm,
                name=f"{name}-seed{seed}",
            )

        @functools.cache
        def earlier_study(seed: int) -> optuna.Study:
            """The warm start's source for ``seed``: the unpruned first sampler's study at
            seed + 1 (50 trials of the same problem, standing for a study the user ran
            before; its compute is not charged to the warm-started run)."""
            return run(args.samplers[0], seed + 1, False)[1]

        seeds = range(args.first_seed, args.first_seed + args.seeds)
        runs = [
            (f"{name}{' + pruning' if pruned else ''}", name, pruned, False)
            for name in args.samplers
            for pruned in (False, True)
        ]
        if args.warm_start:
            runs += [
                (f"{name} + warm start{' + pruning' if pruned else ''}", name, pruned, True)
                for name in args.warm_samplers
                for pruned in (False, True)
            ]
        results: dict[str, list] = {}
        for label, name, pruned, warm in runs:
            started = time.perf_counter()
            results[label] = [
                run(
                    name,
                    seed,
                    pruned,
                    warm_start_from(studies[name], earlier_study(seed)) if warm else None,
                )[0]
                for seed in seeds
            ]
            finals = [rows[-1]["hv"] for rows in results[label]]
            print(
                f"{label}: {np.mean(finals):.4f} {np.round(finals, 4).tolist()} "
                f"({time.perf_counter() - started:.0f} s, {cache.runs} runs so far)",
                file=sys.stderr,
                flush=True,
            )
    print_compute(args, results, budget)


def print_compute(args: argparse.Namespace, results: dict[str, list], budget: int) -> None:
    """The table of hypervolume vs compute, with where each run reaches the done-when target
    (the mean hypervolume of the unpruned first sampler at ``--trials`` trials)."""
    last = args.first_seed + args.seeds - 1
    default = args.samplers[0]
    target = float(np.mean([rows[-1]["hv"] for rows in results[default]]))
    print(f"problem {args.problem}, seeds {args.first_seed}-{last}, budget {budget} client-rounds")
    print(
        "| run | trials (mean) | HV at 20% | HV at 40% | HV at 50% | HV at 100% | std at 100% | "
        f"per seed at 100% | reaches {default}'s {args.trials}-trial HV at | wall s (mean) |"
    )
    print("| --- " * 10 + "|")
    for label, curves in results.items():
        at = {
            share: [compute.hv_at(rows, share * budget) for rows in curves]
            for share in (0.2, 0.4, 0.5, 1.0)
        }
        needed = compute.rounds_to_reach(curves, target)
        reach = f"{needed / budget:.1%}" if math.isfinite(needed) else "not within budget"
        print(
            f"| `{label}` | {np.mean([len(rows) for rows in curves]):.1f} | "
            + " | ".join(f"{np.mean(values):.3f}" for values in at.values())
            + f" | {np.std(at[1.0]):.3f} | {', '.join(f'{v:.3f}' for v in at[1.0])} | {reach} | "
            f"{np.mean([rows[-1]['wall_s'] for rows in curves]):.0f} |"
        )
    needed = compute.rounds_to_reach(results[f"{default} + pruning"], target)
    print(
        f"target: mean HV of unpruned {default} at {args.trials} trials = {target:.4f}; "
        f"{default} + pruning reaches it at {needed} client-rounds = "
        f"{needed / budget:.1%} of {budget}"
    )
    if args.json:
        args.json.write_text(json.dumps({"budget": budget, "results": results}))


if __name__ == "__main__":
    main()
