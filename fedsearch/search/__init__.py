"""Search: spaces, trial pipeline, teacher, studies and their Pareto fronts."""

from __future__ import annotations

from fedsearch.search._export import EXPORT_FORMATS, export_model, trial_artifact
from fedsearch.search._model_io import build_artifact, load_model
from fedsearch.search._note import study_note
from fedsearch.search._objective import (
    StudyRuntime,
    TrialObjective,
    TrialOutcome,
    evaluate_selection,
    prepare_data,
)
from fedsearch.search._pareto import (
    describe_front,
    describe_selection,
    front_summary,
    infeasible_trials,
    is_feasible,
    load_existing_study,
    pareto_rows,
    pareto_trials,
)
from fedsearch.search._progress import ProgressReporter
from fedsearch.search._resolve import (
    OBJECTIVE_DIRECTIONS,
    OBJECTIVE_NAMES,
    ResolvedStudy,
    default_storage_url,
    resolve_study,
)
from fedsearch.search._space import (
    NONE,
    SLOTS,
    ComponentChoice,
    Dimension,
    SearchSpace,
    Selection,
)
from fedsearch.search._status import study_status
from fedsearch.search._study import artifact_dir, open_study, prepare_runtime, run_study
from fedsearch.search._teacher import cached_teacher, load_or_train_teacher, teacher_key
from fedsearch.search._workers import (
    FINISHED_STATES,
    StorageLock,
    StudyBudget,
    TrialSeededSampler,
    error_attributes,
    open_storage,
    worker_id,
)

__all__ = [
    "EXPORT_FORMATS",
    "FINISHED_STATES",
    "NONE",
    "OBJECTIVE_DIRECTIONS",
    "OBJECTIVE_NAMES",
    "SLOTS",
    "ComponentChoice",
    "Dimension",
    "ProgressReporter",
    "ResolvedStudy",
    "SearchSpace",
    "Selection",
    "StorageLock",
    "StudyBudget",
    "StudyRuntime",
    "TrialObjective",
    "TrialOutcome",
    "TrialSeededSampler",
    "artifact_dir",
    "build_artifact",
    "cached_teacher",
    "default_storage_url",
    "describe_front",
    "describe_selection",
    "error_attributes",
    "evaluate_selection",
    "export_model",
    "front_summary",
    "infeasible_trials",
    "is_feasible",
    "load_existing_study",
    "load_model",
    "load_or_train_teacher",
    "open_storage",
    "open_study",
    "pareto_rows",
    "pareto_trials",
    "prepare_data",
    "prepare_runtime",
    "resolve_study",
    "run_study",
    "study_note",
    "study_status",
    "teacher_key",
    "trial_artifact",
    "worker_id",
]
