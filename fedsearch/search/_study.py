"""Creating or joining the Optuna study, and running it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from fedsearch._errors import ConfigError
from fedsearch.search._objective import StudyRuntime, TrialObjective, prepare_data
from fedsearch.search._progress import ProgressReporter
from fedsearch.search._resolve import ResolvedStudy
from fedsearch.search._teacher import load_or_train_teacher, teacher_cache_path

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def artifact_dir(study: ResolvedStudy) -> Path:
    """Folder of the file-system artifact store (``optuna-dashboard --artifact-dir``)."""
    return study.output_dir / "artifacts"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Connect to an RDB storage, creating the folder of a SQLite file if needed."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(url)


def open_study(study: ResolvedStudy) -> optuna.Study:
    """Create the study, or join it when it exists and was made from the same configuration.

    Raises:
        ConfigError: A study of that name exists with other objectives or another
            configuration.
    """
    storage = open_storage(study.storage_url)
    sampler = study.sampler.build().create(seed=study.config.seed)
    existing = _existing_fingerprint(storage, study.study_name, study.directions)
    if existing is not None and existing != study.fingerprint():
        raise ConfigError(
            f"study {study.study_name!r} in {study.storage_url} was created from a different "
            "configuration; pass --study-name to start a new study",
            source=study.source,
        )
    optuna_study = optuna.create_study(
        storage=storage,
        study_name=study.study_name,
        directions=study.directions,
        sampler=sampler,
        load_if_exists=True,
    )
    if existing is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna_study.set_metric_names(study.metric_names)
        optuna_study.set_user_attr("fingerprint", study.fingerprint())
        optuna_study.set_user_attr("config", json.loads(study.config.model_dump_json()))
        optuna_study.set_user_attr("artifact_dir", str(artifact_dir(study).resolve()))
    return optuna_study


def _existing_fingerprint(
    storage: optuna.storages.BaseStorage, name: str, expected: list[str]
) -> str | None:
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    directions = [d.name.lower() for d in storage.get_study_directions(study_id)]
    if directions != expected:
        raise ConfigError(
            f"study {name!r} exists with objectives {directions}, not {expected}; "
            "pass another --study-name"
        )
    return storage.get_study_user_attrs(study_id).get("fingerprint", "")


def run_study(
    study: ResolvedStudy,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    progress: ProgressReporter | None = None,
) -> optuna.Study:
    """Run (or continue) a study.

    Args:
        study: The resolved study.
        n_trials: Trials this process runs (like ``study.optimize``). When
            None, run until the study holds the file's ``search.n_trials``
            finished trials, counting those of every worker.
        timeout: Stop starting trials after this many seconds.
        progress: Receives progress events.
    """
    progress = progress or ProgressReporter()
    optuna_study = open_study(study)
    callbacks = [progress.trial_finished]
    if n_trials is None:
        budget = study.config.search.n_trials
        n_trials = max(
            0, budget - len(optuna_study.get_trials(deepcopy=False, states=FINISHED_STATES))
        )
        callbacks.append(optuna.study.MaxTrialsCallback(budget, states=FINISHED_STATES))
    timeout = timeout if timeout is not None else study.config.search.timeout
    if n_trials == 0:
        return optuna_study
    runtime = prepare_runtime(study, progress)
    optuna_study.set_user_attr("teacher", _teacher_summary(runtime))
    progress.trials_started(
        n_trials, len(optuna_study.get_trials(deepcopy=False, states=FINISHED_STATES))
    )
    objective = TrialObjective(
        runtime, FileSystemArtifactStore(_mkdir(artifact_dir(study))), progress=progress
    )
    optuna_study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=callbacks)
    return optuna_study


def prepare_runtime(study: ResolvedStudy, progress: ProgressReporter | None = None) -> StudyRuntime:
    """Load and partition the data and get the teacher (cached or freshly trained)."""
    progress = progress or ProgressReporter()
    data = prepare_data(study)
    runtime = StudyRuntime(study=study, data=data, teacher=None)
    if study.config.teacher is None:
        return runtime
    cached = teacher_cache_path(study).exists()
    if not cached:
        progress.teacher_started(study.config.teacher.rounds or study.config.federation.rounds)
    teacher = load_or_train_teacher(
        study, runtime.federated_run(), on_round=progress.round_finished
    )
    assert teacher is not None
    progress.teacher_finished(teacher.val_accuracy, teacher.test_accuracy, cached)
    return StudyRuntime(study=study, data=data, teacher=teacher)


def _teacher_summary(runtime: StudyRuntime) -> dict[str, float] | None:
    teacher = runtime.teacher
    if teacher is None:
        return None
    return {
        "val_accuracy": teacher.val_accuracy,
        "test_accuracy": teacher.test_accuracy,
        "artifact_bytes": teacher.artifact_bytes,
    }


def _mkdir(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
