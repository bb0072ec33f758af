"""Where a study stands: trials by state and by worker, failures, best trade-offs."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import optuna
from optuna.trial import TrialState

from fedsearch.study._pareto import front_summary, pareto_rows
from fedsearch.trial._attributes import WORKER_ATTR

RECENT_FAILURES = 5


def study_status(study: optuna.Study) -> dict[str, Any]:
    """A JSON-friendly summary of a stored study.

    Returns:
        ``states`` (count per trial state), ``budget`` (the study file's
        ``n_trials``), ``workers`` (per worker: count per state and seconds
        spent in finished trials), ``running`` (trials in flight),
        ``failures`` (the latest failed trials with their errors),
        ``best`` (the best trial for each objective), ``pareto`` (rows of
        the feasible Pareto front) and ``front`` (what it leaves out, see
        ``front_summary``).
    """
    trials = study.get_trials(deepcopy=False)
    states = Counter(trial.state.name for trial in trials)
    workers: dict[str, dict[str, Any]] = defaultdict(lambda: {"states": Counter(), "busy_s": 0.0})
    for trial in trials:
        entry = workers[str(trial.user_attrs.get(WORKER_ATTR, "-"))]
        entry["states"][trial.state.name] += 1
        if trial.datetime_start is not None and trial.datetime_complete is not None:
            entry["busy_s"] += (trial.datetime_complete - trial.datetime_start).total_seconds()
    rows = pareto_rows(study)
    names = study.metric_names or []
    return {
        "study": study.study_name,
        "budget": study.user_attrs.get("config", {}).get("search", {}).get("n_trials"),
        "states": {state.name: states.get(state.name, 0) for state in TrialState},
        "workers": {
            worker: {"states": dict(entry["states"]), "busy_s": round(entry["busy_s"], 1)}
            for worker, entry in sorted(workers.items())
        },
        "running": [
            {
                "trial": trial.number,
                "worker": trial.user_attrs.get(WORKER_ATTR),
                "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
            }
            for trial in trials
            if trial.state == TrialState.RUNNING
        ],
        "failures": [
            {
                "trial": trial.number,
                "worker": trial.user_attrs.get(WORKER_ATTR),
                "error_type": trial.user_attrs.get("error_type", "no error recorded"),
                "error": trial.user_attrs.get(
                    "error", "its worker died or stopped sending heartbeats"
                ),
            }
            for trial in [t for t in trials if t.state == TrialState.FAIL][-RECENT_FAILURES:]
        ],
        "best": _best_per_objective(rows, names, study.directions),
        "pareto": rows,
        "front": front_summary(study),
    }


def _best_per_objective(
    rows: list[dict[str, Any]], names: list[str], directions: list[optuna.study.StudyDirection]
) -> dict[str, int]:
    """Trial number of the Pareto trial that is best on each objective alone."""
    best = {}
    for name, direction in zip(names, directions, strict=True):
        if rows:
            pick = max if direction == optuna.study.StudyDirection.MAXIMIZE else min
            best[name] = pick(rows, key=lambda row, key=name: row[key])["trial"]
    return best
