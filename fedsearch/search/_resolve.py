"""Turning a study file into a fully validated study, before anything is stored."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from fedsearch._errors import ConfigError
from fedsearch.components import FROM_TEACHER, STAGES, can_vectorize
from fedsearch.config import (
    ComponentRef,
    StudyConfig,
    load_search_space_config,
    load_study_config,
)
from fedsearch.federated import resolve_device
from fedsearch.host import (
    DOWNLINK,
    UPLINK,
    CodecPipelineSpec,
    ComponentRegistry,
    ComponentSpec,
    codec_pipeline_spec,
)
from fedsearch.search._factories import bind_study_factories, factory_digests
from fedsearch.search._privacy_checks import check_privacy
from fedsearch.search._secure_checks import check_secure_aggregation
from fedsearch.search._space import (
    ARCHITECTURE_SLOT,
    MIDDLEWARE_SLOT,
    NONE,
    STRATEGY_SLOT,
    SearchSpace,
    Sourced,
)
from fedsearch.search._tier_checks import check_tiers

OBJECTIVE_NAMES = ("val_accuracy", "model_bytes", "comm_bytes")
OBJECTIVE_DIRECTIONS = ("maximize", "minimize", "minimize")
CPU = torch.device("cpu")


@dataclass(frozen=True)
class ResolvedStudy:
    """A study file validated against the installed plugins.

    Every component is resolved and every param validated, so running it can
    only fail for reasons outside the configuration.
    """

    config: StudyConfig
    source: str
    registry: ComponentRegistry
    space: SearchSpace
    dataset: ComponentSpec
    partitioner: ComponentSpec
    strategy: ComponentSpec
    downlink_codec: CodecPipelineSpec
    uplink_codec: CodecPipelineSpec
    sampler: ComponentSpec
    teacher_architecture: ComponentSpec | None
    storage_url: str
    study_name: str
    objectives: tuple[ComponentSpec, ...] = ()
    """Extra objectives enabled by the study, after the three built in."""
    device: torch.device = CPU
    """Where clients train: the file's ``device``, resolved on this machine."""
    middleware: tuple[ComponentSpec, ...] = ()
    """Payload transforms around the channel, in order."""
    secure_aggregation: ComponentSpec | None = None
    """The uplink's secure aggregation protocol, if any."""
    pruner: ComponentSpec | None = None
    """Multi-fidelity pruning over rounds, when the study enables it."""

    @property
    def metric_names(self) -> list[str]:
        """Names of every objective, in Optuna's order."""
        return [*OBJECTIVE_NAMES, *(spec.cls.metric for spec in self.objectives)]

    @property
    def directions(self) -> list[str]:
        """Direction of every objective, in Optuna's order."""
        return [*OBJECTIVE_DIRECTIONS, *(spec.cls.direction for spec in self.objectives)]

    @property
    def output_dir(self) -> Path:
        """Folder for databases, artifacts and caches."""
        return Path(self.config.output_dir)

    def fingerprint(self) -> str:
        """Hash of everything that determines trial results (not the budget or storage)."""
        where = {"storage", "output_dir", "workers", "device"}  # how, not what, a study computes
        relevant = self.config.model_dump(mode="json", exclude=where)
        relevant["federation"].pop("client_workers")
        relevant["search"].pop("n_trials")
        relevant["search"].pop("timeout")
        relevant["search"].pop("warm_start")  # how the study starts, not what a trial computes
        if relevant["search"]["pruner"] is None:  # fingerprints from before pruners stay valid
            relevant["search"].pop("pruner")
        relevant["space"] = self.space.rows()
        if digests := factory_digests(self.registry):  # the code of your own models
            relevant["factories"] = digests
        if (teacher := self.config.teacher) is not None and teacher.pretrained is not None:
            weights = Path(self.source).parent / teacher.pretrained  # other weights: other study
            if weights.is_file():
                relevant["teacher_weights"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def default_storage_url(output_dir: str) -> str:
    """The embedded SQLite database inside the output folder."""
    return f"sqlite:///{Path(output_dir) / 'fedsearch.db'}"


def resolve_study(
    path: str | Path,
    registry: ComponentRegistry,
    *,
    storage: str | None = None,
    study_name: str | None = None,
) -> ResolvedStudy:
    """Load a study file and validate all of it against ``registry``.

    Args:
        path: The study file.
        registry: Components of the loaded plugins.
        storage: Storage URL overriding the file's.
        study_name: Study name overriding the file's.

    Raises:
        ConfigError: Anything invalid, named by file and field.
    """
    source = str(path)
    config = load_study_config(path)
    space = _resolve_space(config, Path(path), registry)
    registry = bind_study_factories(config, space, registry, Path(path))
    federation = config.federation

    def spec(kind: str, ref: object, field: str) -> ComponentSpec:
        return registry.spec(kind, ref.name, ref.params, source=source, field=field)

    objectives = tuple(
        spec("objective", ref, f"search.objectives[{index}]")
        for index, ref in enumerate(config.search.objectives)
    )
    metrics = [*OBJECTIVE_NAMES, *(objective.cls.metric for objective in objectives)]
    if len(set(metrics)) != len(metrics):
        raise ConfigError(
            f"objectives must be different; got {', '.join(metrics)}",
            source=source,
            field="search.objectives",
        )
    check_tiers(config, space, registry, source)
    teacher = None
    if config.teacher is not None:
        teacher = spec("architecture", config.teacher.architecture, "teacher.architecture")
    elif FROM_TEACHER in space.slots.get(ARCHITECTURE_SLOT, []):
        raise ConfigError(
            "the from_teacher student starts from the teacher, but the study has none; "
            "add a [teacher] table (pretrained = FILE to start from your own model)",
            source=source,
            field="teacher",
        )
    elif any(name != NONE for name in space.slots.get("distill", [])):
        raise ConfigError(
            "the search space distils, but the study has no teacher; add a [teacher] table",
            source=source,
            field="teacher",
        )
    _check_vectorizable(config.federation.execution, space, registry, source)
    secure = None
    if federation.secure_aggregation is not None:
        secure = spec(
            "secure_aggregator", federation.secure_aggregation, "federation.secure_aggregation"
        )
        check_secure_aggregation(secure, config, space, registry, source)
    strategy = spec("strategy", federation.strategy, "federation.strategy")
    middleware = tuple(
        spec("middleware", ref, f"federation.middleware[{index}]")
        for index, ref in enumerate(federation.middleware)
    )
    check_privacy(config, space, registry, (strategy, *middleware), source)
    return ResolvedStudy(
        config=config,
        source=source,
        registry=registry,
        space=space,
        dataset=spec("dataset", config.dataset, "dataset"),
        partitioner=spec("partitioner", federation.partition, "federation.partition"),
        strategy=strategy,
        downlink_codec=_codec_pipeline(
            registry, federation.downlink_codec, DOWNLINK, source, "federation.downlink_codec"
        ),
        uplink_codec=_codec_pipeline(
            registry, federation.uplink_codec, UPLINK, source, "federation.uplink_codec"
        ),
        sampler=spec("sampler", config.search.sampler, "search.sampler"),
        pruner=spec("pruner", config.search.pruner, "search.pruner")
        if config.search.pruner is not None
        else None,
        teacher_architecture=teacher,
        storage_url=storage or config.storage or default_storage_url(config.output_dir),
        study_name=study_name or config.name,
        objectives=objectives,
        device=resolve_device(config.device, source=source),
        middleware=middleware,
        secure_aggregation=secure,
    )


def _check_vectorizable(
    execution: str, space: SearchSpace, registry: ComponentRegistry, source: str
) -> None:
    """Refuse an explicit ``vectorized`` execution with a compressor that cannot be."""
    if execution != "vectorized":
        return
    for stage, names in space.slots.items():
        for name in names:
            if stage == ARCHITECTURE_SLOT or name == NONE or stage not in STAGES:
                continue
            if not can_vectorize(registry.get("compressor", name).cls):  # type: ignore[arg-type]
                raise ConfigError(
                    f"compressor {name!r} cannot be trained under torch.func.vmap "
                    '(vectorizable = False or per-client state); set execution to "auto" '
                    'or "sequential", or remove it from the search space',
                    source=source,
                    field="federation.execution",
                )


def _codec_pipeline(
    registry: ComponentRegistry,
    refs: ComponentRef | list[ComponentRef],
    direction: str,
    source: str,
    field: str,
) -> CodecPipelineSpec:
    stages = [(ref.name, ref.params) for ref in (refs if isinstance(refs, list) else [refs])]
    return codec_pipeline_spec(registry, stages, direction=direction, source=source, field=field)


def _resolve_space(
    config: StudyConfig, study_path: Path, registry: ComponentRegistry
) -> SearchSpace:
    """Merge the search-space file with the study's inline slots and dimensions."""
    space_path = (study_path.parent / config.search.space).resolve()
    try:
        shown = space_path.relative_to(Path.cwd())
    except ValueError:
        shown = space_path
    space_file = load_search_space_config(space_path)
    slots = {slot: Sourced(names, str(shown)) for slot, names in space_file.slots.items()}
    slots |= {slot: Sourced(names, str(study_path)) for slot, names in config.search.slots.items()}
    dims = {name: Sourced(dim, str(shown)) for name, dim in space_file.dimensions.items()}
    dims |= {name: Sourced(dim, str(study_path)) for name, dim in config.search.dimensions.items()}
    ordered = {slot: slots[slot] for slot in ("architecture", *STAGES) if slot in slots}
    ordered |= {slot: entry for slot, entry in slots.items() if slot not in ordered}
    space = SearchSpace.resolve(ordered, dims, registry)
    _check_run_slot_dimensions(config, space, str(study_path))
    return space


def _check_run_slot_dimensions(config: StudyConfig, space: SearchSpace, source: str) -> None:
    """Refuse a study's strategy or middleware dimension whose component its slot does not list.

    ``federation.strategy`` and ``federation.middleware`` keep the params they are
    given; only a component listed in ``search.slots`` is searched, so such a
    dimension would be silently unused.
    """
    for name in config.search.dimensions:
        slot, component = name.split(".")[:2]
        if slot in (STRATEGY_SLOT, MIDDLEWARE_SLOT) and component not in space.slots.get(slot, []):
            raise ConfigError(
                f"{component!r} is searched only when search.slots.{slot} lists it "
                f'(federation.{slot}\'s params are fixed); add {slot} = ["{component}"] '
                "to [search.slots]",
                source=source,
                field=f"search.dimensions.{name}",
            )
