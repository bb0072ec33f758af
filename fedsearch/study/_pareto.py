"""The Pareto front of a study, as rows for tables and JSON."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from fedsearch._errors import ConfigError
from fedsearch.search._resolve import OBJECTIVE_NAMES


def load_existing_study(storage: str, study_name: str) -> optuna.Study:
    """Load a study that must exist, with a clear error when it does not."""
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        listing = ", ".join(names) if names else "none"
        raise ConfigError(
            f"no study named {study_name!r} in {storage} (studies there: {listing})",
            field="--study-name",
        ) from None


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the trial meets the study's constraints (all constraint values <= 0)."""
    return all(value <= 0 for value in trial.constraints.values())


def pareto_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The feasible Pareto front: COMPLETE trials that meet every constraint and that no
    other such trial dominates, smallest model first."""
    front = [trial for trial in study.best_trials if is_feasible(trial)]
    return sorted(front, key=lambda trial: (trial.values[1], -trial.values[0]))


def infeasible_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """COMPLETE trials that break a constraint (kept off the Pareto front)."""
    return [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not is_feasible(trial)
    ]


def pareto_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One JSON-friendly row per Pareto trial."""
    names = study.metric_names or list(OBJECTIVE_NAMES)
    rows = []
    for trial in pareto_trials(study):
        row: dict[str, Any] = {"trial": trial.number}
        row |= dict(zip(names, trial.values, strict=True))
        row["model_bytes"] = int(row["model_bytes"])
        row["comm_bytes"] = int(row["comm_bytes"])
        row["test_accuracy"] = trial.user_attrs.get("test_accuracy")
        row["selection"] = trial.user_attrs.get("selection", {})
        rows.append(row)
    return rows
