"""HeteroFL's MNIST CNN rows, side by side in a reduced setting, and a tier-recipe search.

Run from the repository root (MNIST IDX files in ``--data``, default
$FEDSEARCH_DATA_DIR/mnist or ../shared/data/mnist):

    nice -n 10 python benchmarks/heterofl.py                 # a alone, a-e mix, e alone
    nice -n 10 python benchmarks/heterofl.py --only search   # tier recipes under budgets

HeteroFL (Diao et al. 2021; as listed in Flower's HeteroFL baseline README) trains
MNIST with 100 clients, 10% a round, a 4-layer CNN (64-128-256-512 channels,
static batch norm) and model widths a, b, c, d, e = 1, 1/2, 1/4, 1/8, 1/16 of
it: model a alone 99.47%, the a-e mix (the global model a) 99.23%, model e
alone 98.46%.

Reductions to fit a shared 2-core CPU (every one of them stated):

- data: ``--train`` (default 12000) training images, stratified with seed 0
  (5% of them carved out for validation), not 60000; the full 10000 test images;
- model: fedsearch's LeNet-like ``cnn`` family, 2 conv blocks of 32
  channels (5x5, max-pool), a 128-wide dense layer, no batch norm (92k
  parameters); widths a..e are that CNN at ratios 1, 1/2,
  1/4, 1/8, 1/16 (e: 2 channels per block, 8 dense units); "e alone" is
  that e-sized CNN as its own global model (its own initialisation);
- training: ``--rounds`` (default 30) rounds, 1 local epoch, batch 10, SGD
  learning rate 0.1, no momentum, no weight decay, no learning-rate schedule
  (HeteroFL: many more rounds, SGD with momentum and a decayed rate);
- the mix assigns 20% of the clients to each of a..e (HeteroFL: the same
  uniform mix); HeteroFL's masked-classifier trick is not used.

Each configuration is a real fedsearch study (``run_study``) with one trial
whose tier recipes are fixed (float32, no pruning). The search (``--only
search``) lets three tiers (budgets ``--budgets`` bytes) choose width ratio,
bits and sparsity; its best trial is chosen on validation accuracy among the
feasible ones, and its test accuracy is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import tomli_w
from optuna.trial import TrialState

from fedsearch import get_registry, resolve_study
from fedsearch.study import run_study

REPO = Path(__file__).resolve().parents[1]
RATIOS = {"a": 1.0, "b": 0.5, "c": 0.25, "d": 0.125, "e": 0.0625}
PUBLISHED = {"a": 0.9947, "mix": 0.9923, "e": 0.9846}
CNN = {"depth": 2, "channels": [32, 32], "kernel_size": 5, "hidden": 128}
"""A per-layer dimension takes one value for every layer: both blocks are 32 wide."""
CONFIGS = {"a": ["a"], "mix": ["a", "b", "c", "d", "e"], "e": ["e"]}
E_ALONE = {"depth": 2, "channels": [2, 2], "kernel_size": 5, "hidden": 8}
"""Model e alone is its own global model (e's shapes, e's initialisation): a single
tier e cut from model a would start from a's initialisation, scaled for a's fan-in."""


def mnist_npz(data: Path, train: int, folder: Path) -> tuple[Path, Path]:
    """A stratified ``train``-image subset of MNIST's training set, and its test set."""
    registry = get_registry()
    splits = registry.create("dataset", "mnist", {"root": str(data)}).load()
    labels = splits.train_labels.numpy()
    rng = np.random.default_rng(0)
    per_class = train // 10
    chosen = np.sort(
        np.concatenate(
            [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
        )
    )
    paths = folder / "train.npz", folder / "test.npz"
    np.savez(paths[0], x=splits.train_inputs.numpy()[chosen], y=labels[chosen])
    np.savez(paths[1], x=splits.test_inputs.numpy(), y=splits.test_labels.numpy())
    return paths


def study_file(
    folder: Path,
    name: str,
    data: tuple[Path, Path],
    tiers: list[dict[str, Any]],
    *,
    rounds: int,
    seed: int,
    n_trials: int = 1,
    tiers_table: dict[str, Any] | None = None,
    cnn: dict[str, Any] = CNN,
) -> Path:
    """Write one study (digits-free: the MNIST subset as npz) and its one-family space."""
    space = {
        "slots": {"architecture": ["cnn"]},
        "dimensions": {
            "architecture.cnn.depth": {"value": cnn["depth"]},
            "architecture.cnn.kernel_size": {"value": cnn["kernel_size"]},
            "architecture.cnn.hidden": {"value": cnn["hidden"]},
            "architecture.cnn.channels": {"value": cnn["channels"][0]},  # every block
        },
    }
    (folder / f"{name}-space.toml").write_text(tomli_w.dumps(space))
    study = {
        "name": name,
        "seed": seed,
        "output_dir": str(folder / "runs"),
        "device": "cpu",
        "dataset": {
            "name": "npz",
            "val_fraction": 0.05,
            "params": {"path": str(data[0]), "test_path": str(data[1])},
        },
        "federation": {
            "num_clients": 100,
            "rounds": rounds,
            "fraction": 0.1,
            "local_epochs": 1,
            "batch_size": 10,
            "learning_rate": 0.1,
            "eval_every": rounds,
        },
        "search": {
            "space": f"{name}-space.toml",
            "n_trials": n_trials,
            "sampler": {"name": "random"} if n_trials == 1 else {"name": "tpe"},
        },
        "tiers": {
            "bits": [32],
            "sparsity_low": 0.0,
            "sparsity_high": 0.0,
            **(tiers_table or {}),
            "tiers": tiers,
        },
    }
    path = folder / f"{name}.toml"
    path.write_text(tomli_w.dumps(study))
    return path


def fixed_tiers(names: list[str], alone: bool = False) -> list[dict[str, Any]]:
    """One tier per model width, equal shares, float32, no pruning (alone: ratio 1)."""
    share = 1.0 / len(names)
    return [
        {
            "name": name,
            "share": share,
            "budget_bytes": 10**9,
            "width_ratios": [1.0 if alone else RATIOS[name]],
        }
        for name in names
    ]


def fitting_ratios(budget: int) -> list[float]:
    """The searched widths whose weights at 4 bits (half a byte each) fit ``budget``."""
    registry = get_registry()
    full = registry.create("architecture", "cnn", CNN)
    kept = []
    for ratio in (0.25, 0.5, 1.0):
        params = {**full.params.model_dump(mode="json"), **full.width_scaled(ratio)}
        model = registry.create("architecture", "cnn", params).build((1, 28, 28), 10)
        if sum(p.numel() for p in model.parameters()) / 2 <= budget:
            kept.append(ratio)
    return kept


def run(path: Path) -> optuna.Study:
    """Run a study file to its budget; return the stored study."""
    resolved = resolve_study(path, get_registry())
    return run_study(resolved)


def reproduce(
    folder: Path, data: tuple[Path, Path], only: list[str], rounds: int, seeds: list[int]
) -> list[dict[str, Any]]:
    """Model a alone, the a-e mix and model e alone: every tier's accuracy, per seed."""
    rows = []
    for config in only:
        for seed in seeds:
            name = f"heterofl-{config}-s{seed}"
            started = time.perf_counter()
            study = run(
                study_file(
                    folder,
                    name,
                    data,
                    fixed_tiers(CONFIGS[config], alone=config == "e"),
                    rounds=rounds,
                    seed=seed,
                    cnn=E_ALONE if config == "e" else CNN,
                )
            )
            trial = study.get_trials(states=(TrialState.COMPLETE,))[0]
            for tier in trial.user_attrs["tiers"]:
                rows.append(
                    {
                        "config": config,
                        "seed": seed,
                        "tier": tier["name"],
                        "parameters": tier["parameters"],
                        "model_bytes": tier["model_bytes"],
                        "val_accuracy": round(tier["val_accuracy"], 4),
                        "test_accuracy": round(tier["test_accuracy"], 4),
                        "comm_bytes": int(trial.values[2]),
                        "wall_s_shared_machine": round(time.perf_counter() - started, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def search(
    folder: Path, data: tuple[Path, Path], budgets: list[int], rounds: int, trials: int, seed: int
) -> dict[str, Any]:
    """Three tiers choose width ratio, bits and sparsity under their budgets."""
    tiers = [
        {
            "name": f"tier{index}",
            "share": 1.0 / len(budgets),
            "budget_bytes": budget,
            "width_ratios": fitting_ratios(budget),
        }
        for index, budget in enumerate(budgets)
    ]
    table = {"width_ratios": [0.25, 0.5, 1.0], "bits": [4, 8], "sparsity_high": 0.5}
    path = study_file(
        folder,
        f"heterofl-search-s{seed}",
        data,
        tiers,
        rounds=rounds,
        seed=seed,
        n_trials=trials,
        tiers_table=table,
    )
    study = run(path)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    for trial in complete:
        shown = [
            (t["name"], t["width_ratio"], t["bits"], round(t["sparsity"], 2), t["model_bytes"],
             round(t["val_accuracy"], 4))
            for t in trial.user_attrs["tiers"]
        ]  # fmt: skip
        constraints = {k: round(v, 3) for k, v in trial.user_attrs["constraints"].items()}
        print(trial.number, trial.user_attrs["feasible"], constraints, shown, flush=True)
    feasible = [t for t in complete if t.user_attrs["feasible"]]
    summary: dict[str, Any] = {
        "trials": len(complete),
        "feasible": len(feasible),
        "budgets": budgets,
    }
    if feasible:
        best = max(feasible, key=lambda t: t.values[0])  # chosen on validation
        summary["best"] = {
            "trial": best.number,
            "weighted_val_accuracy": round(best.values[0], 4),
            "weighted_test_accuracy": round(best.user_attrs["test_accuracy"], 4),
            "tiers": [
                {
                    k: tier[k]
                    for k in (
                        "name",
                        "budget_bytes",
                        "model_bytes",
                        "width_ratio",
                        "bits",
                        "sparsity",
                        "val_accuracy",
                        "test_accuracy",
                    )
                }
                for tier in best.user_attrs["tiers"]
            ],
        }
    print(json.dumps(summary, indent=1), flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = (
        Path(os.environ.get("FEDSEARCH_DATA_DIR", REPO.parent / "shared" / "data")) / "mnist"
    )
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--train", type=int, default=12000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--only", nargs="+", default=["a", "mix", "e"], choices=[*CONFIGS, "search"]
    )
    parser.add_argument("--budgets", type=int, nargs="+", default=[4096, 16384, 65536])
    parser.add_argument("--search-trials", type=int, default=6)
    parser.add_argument("--search-rounds", type=int, default=15)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        data = mnist_npz(args.data, args.train, folder)
        configs = [config for config in args.only if config in CONFIGS]
        if configs:
            reproduce(folder, data, configs, args.rounds, args.seeds)
            print("published (HeteroFL, full setting):", json.dumps(PUBLISHED))
        if "search" in args.only:
            for seed in args.seeds:
                search(folder, data, args.budgets, args.search_rounds, args.search_trials, seed)


if __name__ == "__main__":
    main()
