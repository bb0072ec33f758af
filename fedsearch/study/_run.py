"""Creating or joining the Optuna study, and running it."""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import FrozenTrial, TrialState

from fedsearch._errors import ConfigError, TrialFailuresError
from fedsearch.federated import FederatedData
from fedsearch.search._resolve import ResolvedStudy
from fedsearch.study._dashboard import save_study_plots, save_trial_note
from fedsearch.study._note import save_study_note, study_note
from fedsearch.study._preflight import prepare_study, storage_field
from fedsearch.study._pretrained import pretrained_path
from fedsearch.study._storage import (
    FINISHED_STATES,
    Decision,
    StorageLock,
    StudyBudget,
    TrialSeededSampler,
    open_storage,
    wait_for_running_trials,
    worker_id,
)
from fedsearch.study._storage_checks import storage_errors
from fedsearch.study._teacher import load_or_train_teacher
from fedsearch.study._warm_start import WarmStart, enqueue_front, load_warm_start, sampler_factory
from fedsearch.trial._objective import StudyRuntime, TrialObjective, prepare_data
from fedsearch.trial._progress import ProgressReporter


def artifact_dir(study: ResolvedStudy) -> Path:
    """Folder of the file-system artifact store (``optuna-dashboard --artifact-dir``)."""
    return study.output_dir / "artifacts"


def open_study(study: ResolvedStudy, warm: WarmStart | None = None) -> optuna.Study:
    """Create the study, or join it when it exists and was made from the same configuration.

    The storage sends heartbeats for running trials and re-queues the trials
    of workers that died (``[workers]`` of the study file).

    Raises:
        ConfigError: A study of that name exists with other objectives or another
            configuration.
    """
    field, source = storage_field(study)
    with storage_errors(study.storage_url, field=field, source=source):
        storage = open_storage(study.storage_url, study.config.workers)
    sampler = TrialSeededSampler(sampler_factory(study, warm), study.config.seed)
    with StorageLock(study.storage_url, f"fedsearch-create-{study.study_name}"):
        existing = _existing_fingerprint(storage, study.study_name, study.directions)
        if existing is not None and existing != study.fingerprint():
            raise ConfigError(
                f"study {study.study_name!r} in {study.storage_url} was created from a "
                "different configuration; pass --study-name to start a new study",
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
            if warm is not None:  # before the fingerprint that marks the study complete
                enqueue_front(optuna_study, warm)
            _describe_new_study(study, optuna_study)
    return optuna_study


def _describe_new_study(study: ResolvedStudy, optuna_study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna_study.set_metric_names(study.metric_names)
    optuna_study.set_user_attr("config", json.loads(study.config.model_dump_json()))
    optuna_study.set_user_attr("artifact_dir", str(artifact_dir(study).resolve()))
    save_study_note(study, optuna_study)
    optuna_study.set_user_attr("fingerprint", study.fingerprint())  # last: marks it complete


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
    threads: int | None = None,
    progress: ProgressReporter | None = None,
) -> optuna.Study:
    """Run (or continue) a study; any number of workers may run it at once.

    Storage, output folder and data are checked (and the data prepared)
    before the study is created, so a study that cannot run is never stored.
    A trial that raises (a plugin error, a diverged loss) is marked FAIL with
    the error in its user attributes, and the study goes on. Ctrl-C marks the
    running trial FAIL and raises ``KeyboardInterrupt``; finished trials stay.

    Args:
        study: The resolved study.
        n_trials: Trials this process runs (like ``study.optimize``). When
            None, run until the study holds the file's ``search.n_trials``
            finished trials, counting those of every worker.
        timeout: Stop starting trials after this many seconds.
        threads: PyTorch threads of this process (default: ``workers.threads``;
            0 keeps torch's default).
        progress: Receives progress events.

    Raises:
        ConfigError: The storage, the output folder or the data cannot be used
            (nothing is stored then).
        TrialFailuresError: ``workers.max_consecutive_failures`` trials in a
            row failed in this process.
    """
    progress = progress or ProgressReporter()
    workers = study.config.workers
    threads = workers.threads if threads is None else threads
    if threads:
        torch.set_num_threads(threads)
    warm = load_warm_start(study)
    data = prepare_study(study)
    optuna_study = open_study(study, warm)
    budget = StudyBudget(study.config.search.n_trials) if n_trials is None else None
    planned = budget.remaining(optuna_study) if budget is not None else n_trials
    if planned == 0:
        return optuna_study
    runtime = prepare_runtime(study, progress, data=data)
    optuna_study.set_user_attr("teacher", _teacher_summary(runtime))
    optuna_study.set_user_attr("accuracy_floor", runtime.accuracy_floor.as_dict())
    progress.trials_started(
        planned, len(optuna_study.get_trials(deepcopy=False, states=FINISHED_STATES))
    )
    objective = TrialObjective(
        runtime,
        FileSystemArtifactStore(_mkdir(artifact_dir(study))),
        progress=progress,
        worker=worker_id(),
    )
    timeout = timeout if timeout is not None else study.config.search.timeout
    deadline = time.monotonic() + timeout if timeout is not None else math.inf
    runner = _TrialRunner(study, optuna_study, objective, progress.trial_finished)
    started = 0
    while time.monotonic() < deadline and (n_trials is None or started < n_trials):
        claim = StorageLock(study.storage_url, f"fedsearch-budget-{study.study_name}")
        claim.acquire()
        try:
            decision = Decision.RUN if budget is None else budget.decide(optuna_study)
            if decision is Decision.DONE:
                break
            if decision is Decision.WAIT:
                claim.release()
                wait_for_running_trials(optuna_study)
                continue
            started += 1
            runner.run_one(claim)
        finally:
            claim.release()
    return optuna_study


def save_dashboard_plots(study: ResolvedStudy, optuna_study: optuna.Study) -> list[str]:
    """Put the front and learning-curve plots into the study note optuna-dashboard shows.

    ``fedsearch run`` calls it after its trials (drawing takes a few seconds, so
    ``run_study`` leaves it to the caller). Returns the plots' artifact ids.
    """
    store = FileSystemArtifactStore(_mkdir(artifact_dir(study)))
    return save_study_plots(optuna_study, store, study_note(study))


class _TrialRunner:
    """Runs one trial at a time with Optuna and counts failures in a row."""

    def __init__(
        self,
        study: ResolvedStudy,
        optuna_study: optuna.Study,
        objective: TrialObjective,
        trial_finished: Callable[[optuna.Study, FrozenTrial], None],
    ) -> None:
        self.limit = study.config.workers.max_consecutive_failures
        self.storage_url = study.storage_url
        self.optuna_study = optuna_study
        self.objective = objective
        self.trial_finished = trial_finished
        self.failures = 0
        self.last: FrozenTrial | None = None

    def run_one(self, claim: StorageLock) -> None:
        """Run one trial; ``claim`` is released as soon as the trial exists in storage."""

        def objective(trial: optuna.Trial) -> tuple[float, float, float]:
            claim.release()
            return self.objective(trial)

        self.optuna_study.optimize(
            objective, n_trials=1, catch=(Exception,), callbacks=[self._finished]
        )
        last = self.last
        if last is not None and last.state == TrialState.FAIL:
            self.failures += 1
            if self.failures >= self.limit:
                error = last.user_attrs.get("error", "no error recorded")
                raise TrialFailuresError(
                    self.failures, f"{last.user_attrs.get('error_type', 'error')}: {error}"
                )
        else:
            self.failures = 0

    def _finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.last = trial
        save_trial_note(study, trial, self.storage_url)
        self.trial_finished(study, trial)


def prepare_runtime(
    study: ResolvedStudy,
    progress: ProgressReporter | None = None,
    *,
    data: FederatedData | None = None,
) -> StudyRuntime:
    """Load and partition the data (unless given) and get the teacher (cached or trained)."""
    progress = progress or ProgressReporter()
    data = data if data is not None else prepare_data(study)
    runtime = StudyRuntime(study=study, data=data, teacher=None)
    if study.config.teacher is None:
        return runtime
    trained = []

    def on_training() -> None:
        trained.append(True)
        progress.teacher_started(study.config.teacher.rounds or study.config.federation.rounds)

    teacher = load_or_train_teacher(
        study, runtime.federated_run(), on_round=progress.round_finished, on_training=on_training
    )
    assert teacher is not None
    pretrained = pretrained_path(study)
    progress.teacher_finished(
        teacher.val_accuracy,
        teacher.test_accuracy,
        not trained,
        pretrained=str(pretrained) if pretrained is not None else None,
    )
    return StudyRuntime(study=study, data=data, teacher=teacher)


def _teacher_summary(runtime: StudyRuntime) -> dict[str, float | str | None] | None:
    """The study's ``teacher`` user attribute: accuracies, artifact size, training traffic,
    and the file of a pretrained teacher."""
    teacher = runtime.teacher
    if teacher is None:
        return None
    return {
        "val_accuracy": teacher.val_accuracy,
        "test_accuracy": teacher.test_accuracy,
        "artifact_bytes": teacher.artifact_bytes,
        "training_bytes": teacher.training_bytes,
        "pretrained": runtime.study.config.teacher.pretrained,  # the file, or None: trained
    }


def _mkdir(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
