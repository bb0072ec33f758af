"""Preflight check of ``from_teacher`` students: at most the layers the teacher has are frozen."""

from __future__ import annotations

import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from fedsearch._errors import ConfigError
from fedsearch.components import FROM_TEACHER, Architecture
from fedsearch.federated import FederatedData
from fedsearch.search._resolve import ResolvedStudy
from fedsearch.search._space import ARCHITECTURE_SLOT
from fedsearch.trial._student import weighted_layers

FIELD = "architecture.from_teacher.frozen"


def largest_frozen(study: ResolvedStudy) -> int:
    """The most leading layers a ``from_teacher`` trial of the space can freeze (0: none)."""
    if FROM_TEACHER not in study.space.slots.get(ARCHITECTURE_SLOT, []):
        return 0
    for dim in study.space.dimensions[ARCHITECTURE_SLOT, FROM_TEACHER]:
        if dim.field != "frozen":
            continue
        dist = dim.distribution
        if isinstance(dist, CategoricalDistribution):
            return int(max(dist.choices))
        if isinstance(dist, IntDistribution | FloatDistribution):
            return int(dist.high)
        return int(dim.value)
    return 0


def check_frozen_layers(study: ResolvedStudy, data: FederatedData) -> None:
    """Refuse a space that can freeze every layer of the teacher (the head must train).

    Raises:
        ConfigError: The largest ``frozen`` the space allows is at least the
            number of the teacher's layers with weights.
    """
    frozen = largest_frozen(study)
    if not frozen or study.teacher_architecture is None:
        return
    architecture = study.teacher_architecture.build()
    assert isinstance(architecture, Architecture)
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the RNG be
        layers = len(weighted_layers(architecture.build(data.input_shape, data.num_classes)))
    if frozen >= layers:
        raise ConfigError(
            f"from_teacher can freeze up to {frozen} layers, but the teacher has {layers} "
            f"with weights and at least the last must train; keep frozen at most {layers - 1}",
            source=study.source,
            field=f"dimensions.{FIELD}",
        )
