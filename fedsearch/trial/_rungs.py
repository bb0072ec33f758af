"""Multi-fidelity pruning inside a trial: rung points measured, stored in the study, compared.

A rung point is stored as a system attribute of its trial (``fedsearch:rung:<round>``)
through the study's storage, so every worker on a shared database reads the
points of every other worker's trials; nothing else is shared and nobody waits.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
import torch
from optuna.trial import TrialState

from fedsearch.components import Compressor, Pruner, RungPoint, Weights
from fedsearch.federated import FederatedData, RoundRecord
from fedsearch.search._resolve import ResolvedStudy
from fedsearch.trial._model_io import architecture_spec, build_artifact
from fedsearch.trial._student import Student, freeze, unfreeze

RUNG_ATTR_PREFIX = "fedsearch:rung:"
"""System attribute of a trial holding its point at a rung: prefix + the rung's round."""


class RungProbe:
    """The running trial's latest global weights, and the size of the artifact they make.

    ``evaluate_selection`` binds it to the trial's student and compressors and
    the simulation feeds it the global weights after every round; the pruner
    asks ``model_bytes`` only at rungs (building an artifact costs a little).
    """

    def __init__(self) -> None:
        self._weights: Weights | None = None
        self._parts: tuple[Student, FederatedData, Sequence[Compressor], Weights] | None = None
        self.extra_one_time_bytes = 0
        """One-time bytes charged to the trial outside the simulation (the teacher's training)."""

    def bind(
        self,
        student: Student,
        data: FederatedData,
        compressors: Sequence[Compressor],
        extra_one_time_bytes: int,
        frozen: Weights,
    ) -> None:
        """Remember what the trial's artifact is built from (``frozen``: the values of the
        student's frozen weights, which the artifact holds beside the trained ones)."""
        self._parts = (student, data, compressors, frozen)
        self.extra_one_time_bytes = extra_one_time_bytes

    def observe(self, weights: Weights) -> None:
        """The global weights after a round."""
        self._weights = weights

    def model_bytes(self, round_index: int) -> int:
        """Length of the artifact of the latest weights (``round_index`` 0-based).

        Built as the trial's final artifact is: frozen weights are parameters
        again while it is built (compressors find their layers in the model),
        then frozen back.
        """
        if self._parts is None or self._weights is None:
            raise RuntimeError("RungProbe.model_bytes before the first round")
        student, data, compressors, frozen = self._parts
        architecture = student.architecture
        spec = architecture_spec(architecture, data.input_shape, data.num_classes)
        with torch.random.fork_rng(devices=[]):  # building the reference draws weights
            reference = architecture.build(data.input_shape, data.num_classes)
        unfreeze(student, frozen)
        try:
            artifact = build_artifact(
                spec,
                self._weights | frozen,
                compressors,
                model=student.model,
                reference=reference,
                round_index=round_index,
            )
        finally:
            freeze(student)
        return len(artifact)


def rung_points(study: optuna.Study, round_: int, *, exclude: int) -> list[RungPoint]:
    """Points stored at rung ``round_`` by every trial but ``exclude`` (failed ones left out)."""
    key = f"{RUNG_ATTR_PREFIX}{round_}"
    points = []
    for trial in study.get_trials(deepcopy=False):
        if trial.number == exclude or trial.state == TrialState.FAIL:
            continue
        stored = trial.system_attrs.get(key)
        if stored is not None:
            points.append(RungPoint(**stored))
    return points


class RungPruning:
    """Applies the study's pruner to one trial, round after round.

    Args:
        pruner: The study's pruner; None does nothing.
        trial: The running trial.
        num_rounds: Rounds the trial trains for.
        probe: Measures the trial's artifact at a rung.
    """

    def __init__(
        self, pruner: Pruner | None, trial: optuna.Trial, num_rounds: int, probe: RungProbe
    ) -> None:
        self.pruner = pruner
        self.trial = trial
        self.probe = probe
        rungs = pruner.rungs(num_rounds) if pruner is not None else ()
        self.rungs = tuple(r for r in rungs if 1 <= r < num_rounds)
        self.comm_bytes = 0

    @classmethod
    def of_study(cls, study: ResolvedStudy, trial: optuna.Trial, probe: RungProbe) -> RungPruning:
        """The study's pruning of ``trial`` (doing nothing when the study has no pruner)."""
        pruner = study.pruner.build() if study.pruner is not None else None
        assert pruner is None or isinstance(pruner, Pruner)
        return cls(pruner, trial, study.config.federation.rounds, probe)

    def after_round(self, record: RoundRecord, history: Sequence[RoundRecord]) -> None:
        """Store the trial's point at a rung and stop it if the pruner says so.

        Raises:
            optuna.TrialPruned: The trial is behind the others at this rung.
        """
        self.comm_bytes += record.downlink_bytes + record.uplink_bytes + record.one_time_bytes
        if self.pruner is None or record.round not in self.rungs or record.val_accuracy is None:
            return
        trial = self.trial
        point = RungPoint(
            trial=trial.number,
            round=record.round,
            val_accuracy=record.val_accuracy,
            model_bytes=self.probe.model_bytes(record.round - 1),
            comm_bytes=self.comm_bytes + self.probe.extra_one_time_bytes,
        )
        storage = trial.study._storage
        storage.set_trial_system_attr(
            trial._trial_id, f"{RUNG_ATTR_PREFIX}{record.round}", point.as_dict()
        )
        peers = rung_points(trial.study, record.round, exclude=trial.number)
        reason = self.pruner.decide(point, peers)
        if reason is None:
            return
        rung = self.rungs.index(record.round)
        for key, value in {
            "pruned_at_rung": rung,
            "pruned_at_round": record.round,
            "pruned_reason": reason,
            "rung_point": point.as_dict(),
            "rung_peers": sorted(peer.trial for peer in peers),
            "val_accuracy_history": [r.val_accuracy for r in history],
            "history": [r.__dict__ for r in history],
        }.items():
            trial.set_user_attr(key, value)
        raise optuna.TrialPruned(f"rung {rung} (round {record.round}): {reason}")
