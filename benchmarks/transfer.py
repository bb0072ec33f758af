"""Transfer to a new federated task: MNIST-pretrained LeNet-300-100 fine-tuned on Fashion-MNIST.

The model of ``benchmarks/pretrain.py`` (trained centrally on MNIST) is the
study's pretrained teacher on Fashion-MNIST (100 clients, IID, C = 0.1, E = 1,
B = 10). Three students, all LeNet-300-100, at equal communication:

- ``scratch``: trained from a fresh initialisation;
- ``finetune``: ``from_teacher`` with a new head (every layer trains and travels);
- ``frozen``: ``from_teacher`` with a new head and the two hidden layers
  frozen: only the head trains and travels each round; each client downloads
  the frozen layers once, and that download is counted;
- ``frozen1``: the same with only the first hidden layer frozen.

The byte budget is what ``scratch`` uses in ``--rounds`` rounds; ``finetune``
moves the same bytes in as many rounds, ``frozen`` runs ``--frozen-rounds``
rounds and the script reports whether it stayed within the budget (its
one-time download of the frozen layers included). No choice is made: every
figure is reported, the test accuracy beside the validation accuracy. Every
byte is the channel's count.

    nice -n 10 python benchmarks/pretrain.py --model lenet_300_100
    nice -n 10 python benchmarks/transfer.py --pretrained runs/pretrained/lenet_300_100.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import tomli_w
from _federation import default_data_dir

from fedsearch import evaluate_selection, get_registry, resolve_study
from fedsearch.search import ComponentChoice, Selection
from fedsearch.study import prepare_runtime
from fedsearch.trial import StudyRuntime

STUDENTS = {
    "scratch": ComponentChoice("lenet_300_100", {}),
    "finetune": ComponentChoice("from_teacher", {"new_head": True}),
    "frozen": ComponentChoice("from_teacher", {"new_head": True, "frozen": 2}),
    "frozen1": ComponentChoice("from_teacher", {"new_head": True, "frozen": 1}),
}


def study_file(folder: Path, pretrained: Path, data: str, rounds: int) -> Path:
    """A study on Fashion-MNIST whose teacher is the MNIST model given by file."""
    document = {
        "name": "transfer",
        "seed": 0,
        "output_dir": (folder / "runs").as_posix(),
        "dataset": {"name": "fashion_mnist", "val_fraction": 0.05, "params": {"root": data}},
        "federation": {
            "num_clients": 100, "rounds": rounds, "fraction": 0.1, "local_epochs": 1,
            "batch_size": 10, "learning_rate": 0.05, "eval_every": 1,
        },
        "teacher": {
            "architecture": {"name": "lenet_300_100"},
            "pretrained": str(pretrained.resolve()),
        },
        "search": {"space": "space.toml", "n_trials": 1},
    }  # fmt: skip
    (folder / "space.toml").write_text(tomli_w.dumps({"slots": {"architecture": ["mlp"]}}))
    path = folder / "study.toml"
    path.write_text(tomli_w.dumps(document))
    return path


def with_rounds(runtime: StudyRuntime, rounds: int) -> StudyRuntime:
    """The runtime with another round count (same data, same teacher)."""
    study = runtime.study
    federation = study.config.federation.model_copy(update={"rounds": rounds})
    config = study.config.model_copy(update={"federation": federation})
    return dataclasses.replace(runtime, study=dataclasses.replace(study, config=config))


def measure(runtime: StudyRuntime, name: str, rounds: int) -> dict:
    """Train one student for ``rounds`` rounds; its accuracies and bytes."""
    started = time.perf_counter()
    outcome = evaluate_selection(with_rounds(runtime, rounds), Selection(STUDENTS[name], {}))
    simulation = outcome.simulation
    result = {
        "student": name,
        "rounds": rounds,
        "val_accuracy": round(outcome.val_accuracy, 4),
        "test_accuracy": round(outcome.test_accuracy, 4),
        "comm_bytes": outcome.comm_bytes,
        "per_round_bytes": simulation.history[-1].uplink_bytes
        + simulation.history[-1].downlink_bytes,
        "one_time_bytes": outcome.one_time_bytes,
        "val_accuracy_history": [record.val_accuracy for record in simulation.history],
        "wall_s_shared_machine": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    """Run the three students at equal communication and print (and save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", type=Path, default=Path("runs/pretrained/lenet_300_100.pt"))
    parser.add_argument("--data", default=default_data_dir())
    parser.add_argument("--rounds", type=int, default=10, help="rounds of scratch and finetune")
    parser.add_argument("--frozen-rounds", type=int, default=30, help="within the budget")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--students", nargs="+", default=["finetune", "frozen", "frozen1"])
    parser.add_argument("--budget", type=int, help="bytes (default: scratch's, which then runs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        study = resolve_study(
            study_file(Path(folder), args.pretrained, args.data, args.rounds), get_registry()
        )
        runtime = prepare_runtime(study)
        teacher = runtime.teacher
        print(f"MNIST model on Fashion-MNIST: val {teacher.val_accuracy:.4f}", flush=True)
        results = []
        if args.budget is None:
            results.append(measure(runtime, "scratch", args.rounds))
        budget = args.budget or results[0]["comm_bytes"]
        for name in args.students:
            rounds = args.rounds if name == "finetune" else args.frozen_rounds
            results.append(measure(runtime, name, rounds))
    summary = {
        "budget_bytes": budget,
        "within_budget": {r["student"]: r["comm_bytes"] <= budget for r in results},
        "pretrained": str(args.pretrained),
        "mnist_model_on_fashion_val_accuracy": teacher.val_accuracy,
        "results": results,
    }
    print(json.dumps(summary, indent=2), flush=True)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
