"""Component contracts: the abstract base classes plugins implement."""

from __future__ import annotations

from fedsearch.components._architecture import Architecture
from fedsearch.components._base import Component, Weights
from fedsearch.components._codec import PIPELINE_SEPARATOR, Codec, compose_codecs
from fedsearch.components._compressor import (
    STAGES,
    Batch,
    CompressionContext,
    Compressor,
    Stage,
    Teacher,
)
from fedsearch.components._dataset import Dataset, DatasetSplits
from fedsearch.components._factory import (
    FACTORY_ARCHITECTURE,
    FactoryArchitecture,
    ModelFactory,
)
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
from fedsearch.components._sampler import Sampler
from fedsearch.components._strategy import Channel, ClientUpdate, ServerRound, Strategy

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
        Objective,
    )
}
"""Every component kind, by its name."""

__all__ = [
    "COMPONENT_KINDS",
    "FACTORY_ARCHITECTURE",
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
    "FactoryArchitecture",
    "ModelFactory",
    "NoParams",
    "Objective",
    "Partitioner",
    "Sampler",
    "SearchChoices",
    "SearchHint",
    "SearchPerLayer",
    "SearchRange",
    "ServerRound",
    "Stage",
    "Strategy",
    "Teacher",
    "Weights",
    "compose_codecs",
    "search_hint",
]
