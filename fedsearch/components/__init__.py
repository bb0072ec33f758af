"""Component contracts: the abstract base classes plugins implement."""

from __future__ import annotations

from fedsearch.components._architecture import Architecture
from fedsearch.components._base import Component, Weights
from fedsearch.components._channel import DIRECTIONS, Channel, Direction, Traffic, Transfer
from fedsearch.components._codec import PIPELINE_SEPARATOR, Codec, compose_codecs
from fedsearch.components._compressor import (
    STAGES,
    Batch,
    CompressionContext,
    Compressor,
    Stage,
    StepContext,
    Teacher,
    can_vectorize,
    keeps_client_state,
)
from fedsearch.components._dataset import Dataset, DatasetSplits
from fedsearch.components._factory import (
    FACTORY_ARCHITECTURE,
    FactoryArchitecture,
    ModelFactory,
)
from fedsearch.components._from_teacher import FROM_TEACHER, FromTeacherArchitecture
from fedsearch.components._middleware import Middleware, PayloadContext
from fedsearch.components._objective import Objective
from fedsearch.components._params import (
    ComponentParams,
    NoParams,
    SearchChoices,
    SearchHint,
    SearchPerLayer,
    SearchRange,
    search_hint,
)
from fedsearch.components._partitioner import Partitioner
from fedsearch.components._privacy import DifferentiallyPrivate, DpParameters
from fedsearch.components._pruner import Pruner, RungPoint
from fedsearch.components._sampler import Sampler
from fedsearch.components._secure import SecureAggregate, SecureAggregator
from fedsearch.components._strategy import ClientUpdate, ServerRound, Strategy

COMPONENT_KINDS: dict[str, type[Component]] = {
    base.kind: base
    for base in (
        Compressor,
        Architecture,
        Dataset,
        Partitioner,
        Strategy,
        Codec,
        Sampler,
        Pruner,
        Objective,
        Middleware,
        SecureAggregator,
    )
}
"""Every component kind, by its name."""

__all__ = [
    "COMPONENT_KINDS",
    "DIRECTIONS",
    "FACTORY_ARCHITECTURE",
    "FROM_TEACHER",
    "PIPELINE_SEPARATOR",
    "STAGES",
    "Architecture",
    "Batch",
    "Channel",
    "ClientUpdate",
    "Codec",
    "Component",
    "ComponentParams",
    "CompressionContext",
    "Compressor",
    "Dataset",
    "DatasetSplits",
    "DifferentiallyPrivate",
    "Direction",
    "DpParameters",
    "FactoryArchitecture",
    "FromTeacherArchitecture",
    "Middleware",
    "ModelFactory",
    "NoParams",
    "Objective",
    "Partitioner",
    "PayloadContext",
    "Pruner",
    "RungPoint",
    "Sampler",
    "SearchChoices",
    "SearchHint",
    "SearchPerLayer",
    "SearchRange",
    "SecureAggregate",
    "SecureAggregator",
    "ServerRound",
    "Stage",
    "StepContext",
    "Strategy",
    "Teacher",
    "Traffic",
    "Transfer",
    "Weights",
    "can_vectorize",
    "compose_codecs",
    "keeps_client_state",
    "search_hint",
]
