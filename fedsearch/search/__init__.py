"""Search: spaces, trial pipeline, teacher, studies and their Pareto fronts."""

from __future__ import annotations

from fedsearch.search._export import EXPORT_FORMATS, export_model, trial_artifact
from fedsearch.search._model_io import build_artifact, load_model
from fedsearch.search._objective import (
    StudyRuntime,
    TrialObjective,
    TrialOutcome,
    evaluate_selection,
    prepare_data,
)
from fedsearch.search._pareto import (
    describe_selection,
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
from fedsearch.search._study import artifact_dir, open_study, prepare_runtime, run_study
from fedsearch.search._teacher import load_or_train_teacher, teacher_cache_path

__all__ = [
    "EXPORT_FORMATS",
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
    "StudyRuntime",
    "TrialObjective",
    "TrialOutcome",
    "artifact_dir",
    "build_artifact",
    "default_storage_url",
    "describe_selection",
    "evaluate_selection",
    "export_model",
    "load_existing_study",
    "load_model",
    "load_or_train_teacher",
    "open_study",
    "pareto_rows",
    "pareto_trials",
    "prepare_data",
    "prepare_runtime",
    "resolve_study",
    "run_study",
    "teacher_cache_path",
    "trial_artifact",
]
