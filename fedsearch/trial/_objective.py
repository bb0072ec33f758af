"""One trial, end to end: build, compress, train federatedly, serialise, measure."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore

from fedsearch.components import CompressionContext, Compressor, DpParameters, Teacher
from fedsearch.config import ConstraintsConfig
from fedsearch.federated import (
    FederatedData,
    FederatedRun,
    RoundCallback,
    RoundRecord,
    SimulationResult,
    accuracy,
    prepare_federated_data,
    run_federated,
)
from fedsearch.host import CodecPipelineSpec, codec_pipeline_spec
from fedsearch.search._describe import describe_selection
from fedsearch.search._resolve import ResolvedStudy
from fedsearch.search._space import CODEC_SLOTS, Selection
from fedsearch.trial._attributes import WORKER_ATTR, error_attributes
from fedsearch.trial._floor import AccuracyFloor, accuracy_floor
from fedsearch.trial._history_artifact import HISTORY_ATTR, upload_history
from fedsearch.trial._model_io import architecture_spec, build_artifact, load_model
from fedsearch.trial._privacy import privacy_attributes, run_dp_parameters
from fedsearch.trial._progress import ProgressReporter
from fedsearch.trial._rungs import RungProbe, RungPruning
from fedsearch.trial._searched_components import selected_middleware, selected_strategy
from fedsearch.trial._secure_attributes import secure_aggregator
from fedsearch.trial._student import FROZEN_DOWNLOAD, build_student, freeze, student_run, unfreeze
from fedsearch.trial._tier_trial import run_tiered_trial
from fedsearch.trial._trial_attributes import trial_attributes
from fedsearch.trial._upload import upload_bytes


@dataclass(frozen=True)
class StudyRuntime:
    """What every trial of a study shares: the data, its partition and the teacher."""

    study: ResolvedStudy
    data: FederatedData
    teacher: Teacher | None

    @cached_property
    def accuracy_floor(self) -> AccuracyFloor:
        """The validation accuracy a trial must reach to be feasible."""
        return accuracy_floor(self.study.config.search.constraints, self.data.val_labels)

    def codec_pipelines(self, selection: Selection | None = None) -> dict[str, CodecPipelineSpec]:
        """The uplink and downlink codec pipelines: the selection's, else the study's."""
        chosen = selection.codecs if selection is not None else {}
        pipelines = {"uplink_codec": self.study.uplink_codec}
        pipelines["downlink_codec"] = self.study.downlink_codec
        for slot, stages in chosen.items():
            pipelines[slot] = codec_pipeline_spec(
                self.study.registry,
                [(stage.name, stage.params) for stage in stages],
                direction=CODEC_SLOTS[slot],
            )
        return pipelines

    def federated_run(self, selection: Selection | None = None) -> FederatedRun:
        """Fresh strategy and codec instances (they may keep state) over the shared data."""
        pipelines = self.codec_pipelines(selection)
        return FederatedRun(
            data=self.data,
            federation=self.study.config.federation,
            strategy=selected_strategy(self.study, selection),
            downlink_codec=pipelines["downlink_codec"].build(),
            uplink_codec=pipelines["uplink_codec"].build(),
            seed=self.study.config.seed,
            device=self.study.device,
            middleware=tuple(
                spec.build()  # type: ignore[misc]
                for spec in selected_middleware(self.study, selection)
            ),
            secure_aggregator=secure_aggregator(self.study),
        )


def prepare_data(study: ResolvedStudy) -> FederatedData:
    """Load the dataset, carve the validation split and partition the clients."""
    config = study.config
    return prepare_federated_data(
        study.dataset.build().load(),
        val_fraction=config.dataset.val_fraction,
        partitioner=study.partitioner.build(),
        num_clients=config.federation.num_clients,
        seed=config.seed,
    )


@dataclass(frozen=True)
class TrialOutcome:
    """Everything measured for one selection."""

    val_accuracy: float
    test_accuracy: float
    artifact: bytes
    simulation: SimulationResult
    parameters: int
    model: torch.nn.Module
    """The model decoded from ``artifact`` (the one the accuracies were measured on)."""
    teacher_training_bytes: int = 0
    """The teacher's federated training traffic, charged to a trial that uses the teacher."""
    privacy: DpParameters | None = None
    """What a differentially private run did (None when it is not DP)."""

    @property
    def model_bytes(self) -> int:
        """Length of the compressed artifact."""
        return len(self.artifact)

    @property
    def teacher_download_bytes(self) -> int:
        """What the participating clients' downloads of the teacher took."""
        return self.simulation.one_time_by_name.get(Teacher.DOWNLOAD, 0)

    @property
    def one_time_bytes(self) -> int:
        """One-time transfers: the trial's own, plus the teacher's training when it uses it."""
        return self.simulation.one_time_bytes + self.teacher_training_bytes

    @property
    def comm_bytes(self) -> int:
        """Bytes that crossed the channel, both directions, every round, plus one-time bytes."""
        return self.simulation.downlink_bytes + self.simulation.uplink_bytes + self.one_time_bytes


def evaluate_selection(
    runtime: StudyRuntime,
    selection: Selection,
    *,
    on_round: RoundCallback | None = None,
    probe: RungProbe | None = None,
) -> TrialOutcome:
    """Train the selected student with its compressors and measure the objectives.

    The accuracy objective is measured on the model decoded from the artifact
    bytes, so the artifact reproduces it exactly.
    """
    study, data = runtime.study, runtime.data
    registry = study.registry
    student = build_student(study, data, runtime.teacher, selection.architecture)
    architecture, model = student.architecture, student.model
    frozen = freeze(student)
    compressors = [
        registry.create("compressor", choice.name, choice.params)
        for choice in selection.compressors.values()
    ]
    rounds = study.config.federation.rounds
    context = CompressionContext(
        model=model, num_rounds=rounds, teacher=runtime.teacher, seed=study.config.seed
    )
    downloads: dict[str, Any] = {}
    for compressor in compressors:
        assert isinstance(compressor, Compressor)
        compressor.setup(context)
        downloads |= compressor.one_time_downloads()
    run = student_run(runtime.federated_run(selection), student)
    uses_teacher = runtime.teacher is not None and (
        Teacher.DOWNLOAD in downloads or student.from_teacher
    )
    teacher_bytes = runtime.teacher.training_bytes if uses_teacher else 0
    if probe is not None:  # the pruner measures the artifact at its rungs
        probe.bind(student, data, compressors, teacher_bytes, frozen)
    simulation = run_federated(
        model,
        run,
        compressors=compressors,
        one_time_downloads=downloads | ({FROZEN_DOWNLOAD: frozen} if frozen else {}),
        on_round=on_round,
        on_weights=probe.observe if probe is not None else None,
    )
    unfreeze(student, frozen)
    spec = architecture_spec(architecture, data.input_shape, data.num_classes)
    reference = architecture.build(data.input_shape, data.num_classes)
    artifact = build_artifact(
        spec,
        simulation.weights | frozen,
        compressors,
        model=model,
        reference=reference,
        round_index=rounds - 1,
    )
    decoded = load_model(artifact, registry)
    return TrialOutcome(
        val_accuracy=accuracy(decoded, data.val_inputs, data.val_labels),
        test_accuracy=accuracy(decoded, data.test_inputs, data.test_labels),
        artifact=artifact,
        simulation=simulation,
        parameters=sum(parameter.numel() for parameter in decoded.parameters()),
        model=decoded.eval(),
        teacher_training_bytes=teacher_bytes,
        privacy=run_dp_parameters(run, rounds),
    )


class TrialObjective:
    """The Optuna objective: suggest a selection, evaluate it, record and store everything.

    Args:
        runtime: Shared data and teacher of the study.
        artifact_store: Where each trial's artifact is uploaded.
        progress: Receives trial and round events.
        worker: Recorded as the trial's ``worker`` user attribute.
    """

    def __init__(
        self,
        runtime: StudyRuntime,
        artifact_store: FileSystemArtifactStore,
        *,
        progress: ProgressReporter | None = None,
        worker: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.artifact_store = artifact_store
        self.progress = progress or ProgressReporter()
        self.worker = worker

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        """Run one trial; return (val_accuracy, model_bytes, comm_bytes, *extra objectives).

        An exception (or Ctrl-C) is recorded in the trial's user attributes
        (``error_type``, ``error``, ``traceback``) and raised again, so Optuna
        marks the trial FAIL.
        """
        if self.worker is not None:
            trial.set_user_attr(WORKER_ATTR, self.worker)
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except (Exception, KeyboardInterrupt) as error:
            for key, value in error_attributes(error).items():
                trial.set_user_attr(key, value)
            raise

    def _run(self, trial: optuna.Trial) -> tuple[float, ...]:
        started = time.perf_counter()
        study = self.runtime.study
        selection = study.space.suggest(trial)
        trial.set_user_attr("selection", selection.as_dict())  # readable even if it fails
        trial.set_user_attr("summary", describe_selection(selection.as_dict()))
        self.progress.trial_started(trial.number, study.config.federation.rounds)
        if study.config.tiers is not None:  # heterogeneous clients: one sub-model per tier
            store, on_round = self.artifact_store, self._round_callback(trial, RungProbe())
            return run_tiered_trial(self.runtime, trial, selection, store, on_round)
        probe = RungProbe()
        on_round = self._round_callback(trial, probe)
        outcome = evaluate_selection(self.runtime, selection, on_round=on_round, probe=probe)
        attributes = trial_attributes(self.runtime, selection, outcome)
        for key, value in attributes.items():
            trial.set_user_attr(key, value)
        constraints = constraint_values(
            study.config.search.constraints, outcome, self.runtime.accuracy_floor.value
        )
        for name, value in constraints.items():
            trial.set_constraint(name, value)
        trial.set_user_attr("constraints", constraints)
        trial.set_user_attr("feasible", all(value <= 0 for value in constraints.values()))
        extras = [
            float(
                spec.build().measure_trial(
                    outcome.artifact, outcome.model, self.runtime.data.input_shape, attributes
                )
            )
            for spec in study.objectives
        ]
        trial.set_user_attr("artifact_id", self._upload(trial, outcome.artifact))
        history = upload_history(trial, self.artifact_store, outcome.simulation.history)
        trial.set_user_attr(HISTORY_ATTR, history)
        trial.set_user_attr("wall_time_s", round(time.perf_counter() - started, 3))
        return (
            outcome.val_accuracy,
            float(outcome.model_bytes),
            float(outcome.comm_bytes),
            *extras,
        )

    def _round_callback(self, trial: optuna.Trial, probe: RungProbe) -> RoundCallback:
        """Reports progress, applies ``federation.early_abort`` and the pruner after every round."""
        rule = self.runtime.study.config.federation.early_abort
        history: list[RoundRecord] = []
        rungs = RungPruning.of_study(self.runtime.study, trial, probe)

        def on_round(record: RoundRecord) -> None:
            self.progress.round_finished(record)
            history.append(record)
            rungs.after_round(record, history)
            accuracy_now = record.val_accuracy
            if rule is None or accuracy_now is None or record.round < rule.after_round:
                return
            if accuracy_now < rule.min_accuracy:
                trial.set_user_attr("pruned_at_round", record.round)
                trial.set_user_attr("val_accuracy_history", [r.val_accuracy for r in history])
                trial.set_user_attr("history", [r.__dict__ for r in history])
                raise optuna.TrialPruned(
                    f"validation accuracy {accuracy_now:.4f} < {rule.min_accuracy} after round "
                    f"{record.round} (federation.early_abort)"
                )

        return on_round

    def _upload(self, trial: optuna.Trial, artifact: bytes) -> str:
        filename = f"trial-{trial.number}.fsz"
        return upload_bytes(
            self.artifact_store, trial, artifact, filename, "application/octet-stream"
        )


def constraint_values(
    limits: ConstraintsConfig, outcome: TrialOutcome, floor: float
) -> dict[str, float]:
    """Optuna constraint values of the study's limits: feasible when <= 0.

    Each is the relative overshoot (``model_bytes / max_model_bytes - 1``;
    ``floor - val_accuracy`` for accuracy), so violations of different limits
    are on comparable scales when samplers add them up. The accuracy floor
    (``min_accuracy``, or its default) always applies.
    """
    values: dict[str, float] = {}
    if limits.max_model_bytes is not None:
        values["max_model_bytes"] = outcome.model_bytes / limits.max_model_bytes - 1.0
    values["min_accuracy"] = floor - outcome.val_accuracy
    if limits.max_comm_bytes is not None:
        values["max_comm_bytes"] = outcome.comm_bytes / limits.max_comm_bytes - 1.0
    if limits.max_epsilon is not None and outcome.privacy is not None:
        values["max_epsilon"] = (
            privacy_attributes(outcome.privacy)["epsilon"] / limits.max_epsilon - 1
        )
    return values
