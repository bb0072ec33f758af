"""A study: open or join it in storage, train its teacher once, run its trials
under a shared budget, and read back its Pareto front, status, note and exports."""

from __future__ import annotations

from fedsearch.study._export import EXPORT_FORMATS, export_model, trial_artifact
from fedsearch.study._export_trials import export_trials
from fedsearch.study._note import study_note
from fedsearch.study._pareto import (
    describe_front,
    front_summary,
    infeasible_trials,
    is_feasible,
    load_existing_study,
    pareto_rows,
    pareto_trials,
)
from fedsearch.study._rescore import ExportScore
from fedsearch.study._run import (
    artifact_dir,
    open_study,
    prepare_runtime,
    run_study,
    save_dashboard_plots,
)
from fedsearch.study._status import study_status
from fedsearch.study._storage_checks import check_output_file, check_writable_folder
from fedsearch.study._teacher import load_or_train_teacher

__all__ = [
    "EXPORT_FORMATS",
    "ExportScore",
    "artifact_dir",
    "check_output_file",
    "check_writable_folder",
    "describe_front",
    "export_model",
    "export_trials",
    "front_summary",
    "infeasible_trials",
    "is_feasible",
    "load_existing_study",
    "load_or_train_teacher",
    "open_study",
    "pareto_rows",
    "pareto_trials",
    "prepare_runtime",
    "run_study",
    "save_dashboard_plots",
    "study_note",
    "study_status",
    "trial_artifact",
]
