"""One trial: the study's runtime (data, teacher), a selection trained federatedly,
its artifact written, decoded and scored; the Optuna objective around it."""

from __future__ import annotations

from fedsearch.trial._model_io import build_artifact, load_model
from fedsearch.trial._objective import (
    StudyRuntime,
    TrialObjective,
    TrialOutcome,
    evaluate_selection,
    prepare_data,
)
from fedsearch.trial._progress import ProgressReporter

__all__ = [
    "ProgressReporter",
    "StudyRuntime",
    "TrialObjective",
    "TrialOutcome",
    "build_artifact",
    "evaluate_selection",
    "load_model",
    "prepare_data",
]
