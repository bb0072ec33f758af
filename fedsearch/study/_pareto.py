"""The Pareto front of a study, as rows for tables and JSON."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from fedsearch._errors import ConfigError
from fedsearch.search._resolve import OBJECTIVE_NAMES
from fedsearch.study._storage_checks import check_storage, storage_errors


def load_existing_study(storage: str, study_name: str | None = None) -> optuna.Study:
    """Load a study that must exist, with a clear error when it does not.

    Creates nothing: a mistyped SQLite path is an error, not a new empty database.
    Without ``study_name``, the storage must hold exactly one study.
    """
    check_storage(storage, create=False, field="--storage")
    try:
        with storage_errors(storage, field="--storage"):
            if study_name is None:
                study_name = _only_study(storage)
            return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        listing = ", ".join(names) if names else "none"
        raise ConfigError(
            f"no study named {study_name!r} in {storage} (studies there: {listing})",
            field="--study-name",
        ) from None


def _only_study(storage: str) -> str:
    """The name of the one study in ``storage``."""
    names = optuna.get_all_study_names(storage)
    if len(names) == 1:
        return names[0]
    listing = ", ".join(names) if names else "none"
    raise ConfigError(
        f"the storage holds {len(names)} studies ({listing}); name one with --study-name",
        field="--study-name",
    )


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


def pareto_rows(
    study: optuna.Study, front: list[optuna.trial.FrozenTrial] | None = None
) -> list[dict[str, Any]]:
    """One JSON-friendly row per distinct point of the feasible Pareto front.

    Front trials with identical objective values share one row, that of the
    lowest trial number; ``identical`` lists the others. ``params`` are the
    trial's sampled Optuna params (what the search chose; ``selection`` holds
    every setting). ``front``: the ``pareto_trials`` already computed.
    """
    names = study.metric_names or list(OBJECTIVE_NAMES)
    groups: dict[tuple[float, ...], list[optuna.trial.FrozenTrial]] = {}
    for trial in pareto_trials(study) if front is None else front:
        groups.setdefault(tuple(trial.values), []).append(trial)
    rows = []
    for members in groups.values():
        trial, *others = sorted(members, key=lambda member: member.number)
        row: dict[str, Any] = {"trial": trial.number}
        row |= dict(zip(names, trial.values, strict=True))
        row["model_bytes"] = int(row["model_bytes"])
        row["comm_bytes"] = int(row["comm_bytes"])
        row["test_accuracy"] = trial.user_attrs.get("test_accuracy")
        row["selection"] = trial.user_attrs.get("selection", {})
        row["params"] = trial.params
        row["identical"] = [other.number for other in others]
        rows.append(row)
    return rows


def front_summary(study: optuna.Study) -> dict[str, Any]:
    """What the displayed front leaves out, for the note under every front.

    Returns:
        ``complete`` (COMPLETE trials), ``infeasible`` (those below the
        accuracy floor or breaking another constraint), ``identical`` (those
        whose objective values repeat an earlier complete trial's) and
        ``accuracy_floor`` (the study's floor, as recorded when it ran).
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    seen: set[tuple[float, ...]] = set()
    identical = 0
    for trial in sorted(complete, key=lambda trial: trial.number):
        identical += tuple(trial.values) in seen
        seen.add(tuple(trial.values))
    return {
        "complete": len(complete),
        "infeasible": sum(not is_feasible(trial) for trial in complete),
        "identical": identical,
        "accuracy_floor": study.user_attrs.get("accuracy_floor"),
    }


def describe_front(summary: dict[str, Any]) -> str:
    """One line under a front: its accuracy floor, and the trials it leaves out or folds."""
    floor = summary.get("accuracy_floor")
    if floor is None:
        bound = "no accuracy floor recorded"
    elif floor["source"] == "default":
        bound = (
            f"validation accuracy at least {floor['value']:.4f} (default floor: majority class "
            f"{floor['majority_accuracy']:.4f} + 3 standard errors)"
        )
    else:
        bound = f"validation accuracy at least {floor['value']:.4f} (min_accuracy)"
    return (
        f"Feasible front: {bound}. Of {summary['complete']} complete trials: "
        f"{summary['infeasible']} infeasible (below the floor or breaking a constraint; user "
        f"attribute feasible = false), {summary['identical']} repeating the objectives of an "
        "earlier trial."
    )
