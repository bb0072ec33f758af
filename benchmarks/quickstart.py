"""Time the README's main job: the quickstart study in a fresh folder, and what it found.

Run from the repository root:

    python benchmarks/quickstart.py [--existing runs/fedsearch.db]

It runs ``fedsearch run studies/quickstart.toml`` in a temporary folder (so
nothing is cached), then prints the wall time, the trial counts, the accuracy
floor and what the feasible front leaves out, the teacher and what its
training traffic adds to a distilled trial, the validation accuracy of every
2-bit trial, the Pareto front size, and the smallest Pareto model within 2
points of the teacher. ``--existing`` reads a quickstart database that an
earlier ``fedsearch run`` wrote instead of running it again (no wall time).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from fedsearch.study import front_summary, pareto_rows, pareto_trials

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", type=Path, help="a quickstart database to read instead")
    args = parser.parse_args()
    if args.existing is not None:
        report(optuna.load_study(study_name="quickstart", storage=f"sqlite:///{args.existing}"))
        return
    fedsearch = str(Path(sys.executable).with_name("fedsearch"))
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run(
            [fedsearch, "run", str(REPO / "studies" / "quickstart.toml")],
            cwd=folder,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        storage = f"sqlite:///{Path(folder) / 'runs' / 'fedsearch.db'}"
        study = optuna.load_study(study_name="quickstart", storage=storage)
    print(f"wall time (install excluded): {wall:.1f} s")
    report(study)


def _bits(trial: optuna.trial.FrozenTrial) -> int | None:
    return trial.user_attrs["selection"].get("quantize", {}).get("params", {}).get("bits")


def report(study: optuna.Study) -> None:
    """Print what the quickstart study found."""
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    front = pareto_trials(study)
    summary = front_summary(study)
    floor = summary["accuracy_floor"]
    teacher = study.user_attrs["teacher"]
    print(f"complete trials: {len(complete)} of {len(study.trials)}")
    print(
        f"accuracy floor: {floor['value']:.4f} ({floor['source']}; majority class "
        f"{floor['majority_accuracy']:.4f}); infeasible {summary['infeasible']}, "
        f"repeating another's objectives {summary['identical']}"
    )
    print(f"Pareto front: {len(front)} trials in {len(pareto_rows(study))} rows")
    print(f"teacher: test accuracy {teacher['test_accuracy']:.4f}")
    print(f"teacher artifact: {teacher['artifact_bytes']} B")
    print(f"teacher training traffic: {teacher['training_bytes']} B")
    distilled = [t for t in complete if t.user_attrs["teacher_training_bytes"]]
    if distilled:
        comm = sorted(int(t.values[2]) for t in distilled)
        downloads = sorted(t.user_attrs["teacher_download_bytes"] for t in distilled)
        print(
            f"distilled trials: {len(distilled)}, comm_bytes {comm[0]} to {comm[-1]} B, "
            f"teacher downloads {downloads[0]} to {downloads[-1]} B"
        )
    val = [t.values[0] for t in complete]
    print(  # the figures the quickstart's max_grad_norm was chosen on (RESULTS.md: Quickstart)
        f"validation accuracy of the trials: mean {np.mean(val):.4f}, median "
        f"{np.median(val):.4f}, min {min(val):.4f}, below 0.5: {sum(v < 0.5 for v in val)}"
    )
    for bits in (2, 3):
        accuracies = sorted(round(t.values[0], 4) for t in complete if _bits(t) == bits)
        print(f"{bits}-bit trials, validation accuracy: {accuracies}")
    close = [t for t in front if t.user_attrs["test_accuracy"] >= teacher["test_accuracy"] - 0.02]
    best = min(close, key=lambda t: t.values[1]) if close else None
    if best is not None:
        ratio = teacher["artifact_bytes"] / best.values[1]
        print(
            f"smallest Pareto model within 2 points of the teacher: trial {best.number}, "
            f"{int(best.values[1])} B ({ratio:.0f}x smaller), test accuracy "
            f"{best.user_attrs['test_accuracy']:.4f}"
        )


if __name__ == "__main__":
    main()
