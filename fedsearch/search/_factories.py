"""The model factories a study file names, loaded from beside it and bound to its registry."""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

from optuna.distributions import CategoricalDistribution

from fedsearch._errors import ConfigError
from fedsearch.components import FACTORY_ARCHITECTURE, ModelFactory
from fedsearch.config import StudyConfig
from fedsearch.host import ComponentRegistry, load_factory, with_factories
from fedsearch.search._space import ARCHITECTURE_SLOT, SearchSpace

_SPACE_FIELD = f"dimensions.{ARCHITECTURE_SLOT}.{FACTORY_ARCHITECTURE}"


def _space_uses(space: SearchSpace, source: str) -> list[tuple[str, dict[str, Any], str]]:
    """``(reference, kwargs, field)`` of every factory the architecture slot may build."""
    dims = {
        dim.field: dim
        for dim in space.dimensions.get((ARCHITECTURE_SLOT, FACTORY_ARCHITECTURE), [])
    }
    if not dims:
        return []
    factory, kwargs = dims["factory"], dims["kwargs"]
    if isinstance(factory.distribution, CategoricalDistribution):
        references = [str(choice) for choice in factory.distribution.choices]
    else:
        references = [factory.value]
    field = f"{_SPACE_FIELD}.factory"
    if not all(references):
        raise ConfigError(
            f'the factory architecture needs its function: set "{field.partition(".")[2]}" = '
            '{ value = "my_models:build" } in [search.dimensions]',
            source=source,
            field=field,
        )
    return [(reference, dict(kwargs.value or {}), field) for reference in references]


def _teacher_use(
    config: StudyConfig, registry: ComponentRegistry, source: str
) -> list[tuple[str, dict[str, Any], str]]:
    ref = config.teacher.architecture if config.teacher is not None else None
    if ref is None or ref.name != FACTORY_ARCHITECTURE:
        return []
    field = "teacher.architecture.params.factory"
    params = registry.spec("architecture", ref.name, ref.params, source=source, field=field).params
    if not params.factory:
        raise ConfigError(
            "the factory architecture needs its function: params.factory = 'my_models:build'",
            source=source,
            field=field,
        )
    return [(params.factory, dict(params.kwargs), field)]


def bind_study_factories(
    config: StudyConfig, space: SearchSpace, registry: ComponentRegistry, study_path: Path
) -> ComponentRegistry:
    """``registry`` bound to the factories the study names (itself when it names none).

    Each ``module`` is a Python file beside the study file, or an importable module.

    Raises:
        ConfigError: A factory is not set, missing, fails to import, or cannot
            take its kwargs (named by file and field).
    """
    source = str(study_path)
    uses = _teacher_use(config, registry, source) + _space_uses(space, source)
    if not uses:
        return registry
    factories: dict[str, ModelFactory] = {}
    fields: dict[str, str] = {}
    checked: set[str] = set()
    for reference, kwargs, field in uses:
        key = json.dumps([reference, kwargs], sort_keys=True, default=repr)
        if key in checked:
            continue
        checked.add(key)
        function = load_factory(
            reference, study_path.parent, kwargs=kwargs, source=source, field=field
        )
        factories.setdefault(reference, function)
        fields.setdefault(reference, field)
    return with_factories(registry, factories, source=source, fields=fields)


def factory_digests(registry: ComponentRegistry) -> dict[str, str]:
    """SHA-256 of the source file of every factory bound to ``registry``, by reference.

    They belong to a study's fingerprint: editing the model's code is a
    different study, not more trials of the same one.
    """
    if FACTORY_ARCHITECTURE not in registry.names("architecture"):
        return {}
    factories = getattr(registry.get("architecture", FACTORY_ARCHITECTURE).cls, "factories", {})
    digests = {}
    for reference, function in factories.items():
        try:
            source = Path(inspect.getsourcefile(function) or "").read_bytes()
        except (TypeError, OSError):  # built without a source file: its reference stands
            source = b""
        digests[reference] = hashlib.sha256(source).hexdigest()[:16]
    return digests
