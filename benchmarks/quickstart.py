"""Time the README's main job: the quickstart study in a fresh folder.

Run from the repository root:

    python benchmarks/quickstart.py

It runs ``fedsearch run studies/quickstart.toml`` in a temporary folder (so
nothing is cached), then prints the wall time, the trial counts, the Pareto
front size, and the smallest Pareto model within 2 points of the teacher.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from fedsearch.study import pareto_trials

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
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
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    front = pareto_trials(study)
    teacher = study.user_attrs["teacher"]
    close = [t for t in front if t.user_attrs["test_accuracy"] >= teacher["test_accuracy"] - 0.02]
    best = min(close, key=lambda t: t.values[1]) if close else None
    print(f"wall time (install excluded): {wall:.1f} s")
    print(f"complete trials: {len(complete)} of {len(study.trials)}")
    print(f"Pareto front: {len(front)} trials")
    print(f"teacher: test accuracy {teacher['test_accuracy']:.4f}")
    print(f"teacher artifact: {teacher['artifact_bytes']} B")
    if best is not None:
        ratio = teacher["artifact_bytes"] / best.values[1]
        print(
            f"smallest Pareto model within 2 points of the teacher: trial {best.number}, "
            f"{int(best.values[1])} B ({ratio:.0f}x smaller), test accuracy "
            f"{best.user_attrs['test_accuracy']:.4f}"
        )


if __name__ == "__main__":
    main()
