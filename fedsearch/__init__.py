"""fedsearch: AutoML compression search for federated learning.

Public API; plugins and tests import from here only.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fedsearch._errors import (
    ArtifactError,
    ConfigError,
    DivergenceError,
    FedsearchError,
    PluginError,
    TrialFailuresError,
)
from fedsearch.artifact import (
    Artifact,
    FloatTensor,
    ModelSpec,
    QuantizedTensor,
    StoredTensor,
    decode_artifact,
    describe_artifact,
    encode_artifact,
)
from fedsearch.components import (
    STAGES,
    Architecture,
    Batch,
    Channel,
    ClientUpdate,
    Codec,
    Component,
    ComponentParams,
    CompressionContext,
    Compressor,
    Dataset,
    DatasetSplits,
    FactoryArchitecture,
    Middleware,
    NoParams,
    Objective,
    Partitioner,
    PayloadContext,
    Pruner,
    RungPoint,
    Sampler,
    SearchChoices,
    SearchPerLayer,
    SearchRange,
    ServerRound,
    StepContext,
    Strategy,
    Teacher,
    Traffic,
    Weights,
    compose_codecs,
)
from fedsearch.hookspecs import hookimpl, hookspec
from fedsearch.host import (
    ComponentRegistry,
    Registrar,
    get_plugin_manager,
    get_registry,
    with_factories,
)
from fedsearch.search import OBJECTIVE_NAMES, ResolvedStudy, Selection, resolve_study
from fedsearch.study import pareto_rows, run_study
from fedsearch.trial import ProgressReporter, build_artifact, evaluate_selection, load_model

try:
    __version__ = version("fedsearch")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

__all__ = [
    "OBJECTIVE_NAMES",
    "STAGES",
    "Architecture",
    "Artifact",
    "ArtifactError",
    "Batch",
    "Channel",
    "ClientUpdate",
    "Codec",
    "Component",
    "ComponentParams",
    "ComponentRegistry",
    "CompressionContext",
    "Compressor",
    "ConfigError",
    "Dataset",
    "DatasetSplits",
    "DivergenceError",
    "FactoryArchitecture",
    "FedsearchError",
    "FloatTensor",
    "Middleware",
    "ModelSpec",
    "NoParams",
    "Objective",
    "Partitioner",
    "PayloadContext",
    "PluginError",
    "ProgressReporter",
    "Pruner",
    "QuantizedTensor",
    "Registrar",
    "ResolvedStudy",
    "RungPoint",
    "Sampler",
    "SearchChoices",
    "SearchPerLayer",
    "SearchRange",
    "Selection",
    "ServerRound",
    "StepContext",
    "StoredTensor",
    "Strategy",
    "Teacher",
    "Traffic",
    "TrialFailuresError",
    "Weights",
    "__version__",
    "build_artifact",
    "compose_codecs",
    "decode_artifact",
    "describe_artifact",
    "encode_artifact",
    "evaluate_selection",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "hookspec",
    "load_model",
    "pareto_rows",
    "resolve_study",
    "run_study",
    "with_factories",
]
