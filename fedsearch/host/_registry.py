"""The component registry and the ``register`` object plugins receive."""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from fedsearch._errors import ConfigError, PluginError
from fedsearch.components import (
    COMPONENT_KINDS,
    STAGES,
    Component,
    ComponentParams,
    Compressor,
    Objective,
    SearchPerLayer,
    search_hint,
)

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class RegisteredComponent:
    """A component class and the plugin that supplied it."""

    cls: type[Component]
    plugin: str
    plugin_version: str | None

    @property
    def kind(self) -> str:
        """The component kind (``compressor``, ``architecture``, ...)."""
        return self.cls.kind

    @property
    def name(self) -> str:
        """The component name, unique within its kind."""
        return self.cls.name


class ComponentRegistry:
    """Every component the loaded plugins contributed, by kind and name."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, RegisteredComponent]] = {
            kind: {} for kind in COMPONENT_KINDS
        }

    def add(self, cls: type[Component], *, plugin: str, plugin_version: str | None) -> None:
        """Validate ``cls`` and record it as supplied by ``plugin``."""
        kind = cls.kind
        existing = self._components[kind].get(cls.name)
        if existing is not None:
            raise PluginError(
                f"{kind} {cls.name!r} is already registered by plugin {existing.plugin!r}; "
                f"rename one of them or block a plugin with FEDSEARCH_BLOCK_PLUGINS",
                plugin=plugin,
            )
        self._components[kind][cls.name] = RegisteredComponent(cls, plugin, plugin_version)

    def replaced(self, cls: type[Component]) -> ComponentRegistry:
        """A copy in which ``cls`` stands for the registered component of its kind and name.

        The copy keeps the plugin that registered the original; ``self`` is unchanged.
        """
        original = self.get(cls.kind, cls.name)
        copy = ComponentRegistry()
        copy._components = {kind: dict(entries) for kind, entries in self._components.items()}
        copy._components[cls.kind][cls.name] = RegisteredComponent(
            cls, original.plugin, original.plugin_version
        )
        return copy

    def names(self, kind: str) -> list[str]:
        """Names of the registered components of ``kind``, sorted."""
        return sorted(self._components[kind])

    def __iter__(self) -> Iterator[RegisteredComponent]:
        for kind in COMPONENT_KINDS:
            yield from self._components[kind].values()

    def get(
        self, kind: str, name: str, *, source: str | None = None, field: str | None = None
    ) -> RegisteredComponent:
        """Return the registered component, or raise a ``ConfigError`` suggesting a fix."""
        found = self._components[kind].get(name)
        if found is None:
            raise ConfigError(
                unknown_name_message(f"{kind}", name, self.names(kind)), source=source, field=field
            )
        return found

    def create(
        self,
        kind: str,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        source: str | None = None,
        field: str | None = None,
    ) -> Component:
        """Instantiate a component with validated params (``ConfigError`` when invalid)."""
        return self.spec(kind, name, params, source=source, field=field).build()

    def spec(
        self,
        kind: str,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        source: str | None = None,
        field: str | None = None,
    ) -> ComponentSpec:
        """Validate a component choice without instantiating it (``ConfigError`` when invalid)."""
        cls = self.get(kind, name, source=source, field=field).cls
        return ComponentSpec(cls, validate_params(cls, params or {}, source=source, field=field))


def validate_params(
    cls: type[Component],
    params: Mapping[str, Any],
    *,
    source: str | None = None,
    field: str | None = None,
) -> ComponentParams:
    """Validate ``params`` against ``cls.Params``, turning errors into one ``ConfigError``."""
    try:
        return cls.Params.model_validate(dict(params))
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        prefix = f"{field}.{where}" if field and where else field or where
        if problem["type"] == "extra_forbidden":
            allowed = ", ".join(cls.Params.model_fields) or "no params"
            message = f"unknown param; {cls.kind} {cls.name!r} takes: {allowed}"
        else:
            message = f"{validation_message(problem)} (got {problem.get('input')!r})"
        raise ConfigError(message, source=source, field=prefix) from None


def validation_message(problem: Mapping[str, Any]) -> str:
    """Pydantic's message for one error, without its ``Value error, `` prefix."""
    return str(problem["msg"]).removeprefix("Value error, ")


def unknown_name_message(what: str, name: str, known: list[str]) -> str:
    """``unknown X 'foo'; did you mean 'bar'? Known: ...`` with the closest match."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(known) if known else "none installed"
    return f"unknown {what} {name!r}{hint} (known: {listing})"


class Registrar:
    """The ``register`` argument of ``fedsearch_register_components``.

    One method per component kind; each takes a component class.
    """

    def __init__(self, registry: ComponentRegistry, *, plugin: str, plugin_version: str | None):
        self._registry = registry
        self._plugin = plugin
        self._plugin_version = plugin_version

    def compressor(self, cls: type[Component]) -> None:
        """Register a compressor (pruning, quantization, distillation, low-rank)."""
        self._add("compressor", cls)

    def architecture(self, cls: type[Component]) -> None:
        """Register a student model family."""
        self._add("architecture", cls)

    def dataset(self, cls: type[Component]) -> None:
        """Register a dataset."""
        self._add("dataset", cls)

    def partitioner(self, cls: type[Component]) -> None:
        """Register a client partitioner."""
        self._add("partitioner", cls)

    def strategy(self, cls: type[Component]) -> None:
        """Register a server aggregation strategy."""
        self._add("strategy", cls)

    def codec(self, cls: type[Component]) -> None:
        """Register a payload codec."""
        self._add("codec", cls)

    def sampler(self, cls: type[Component]) -> None:
        """Register a search sampler."""
        self._add("sampler", cls)

    def pruner(self, cls: type[Component]) -> None:
        """Register a multi-fidelity pruner (stops trials behind the others at a rung)."""
        self._add("pruner", cls)

    def objective(self, cls: type[Component]) -> None:
        """Register an extra objective (FLOPs, latency, ...), enabled per study."""
        self._add("objective", cls)

    def middleware(self, cls: type[Component]) -> None:
        """Register a payload transform (clipping, noise, masking) applied around the channel."""
        self._add("middleware", cls)

    def secure_aggregator(self, cls: type[Component]) -> None:
        """Register a secure aggregation or homomorphic encryption protocol."""
        self._add("secure_aggregator", cls)

    def _add(self, kind: str, cls: type[Component]) -> None:
        _check_component_class(kind, cls, self._plugin)
        self._registry.add(cls, plugin=self._plugin, plugin_version=self._plugin_version)


def _check_component_class(kind: str, cls: Any, plugin: str) -> None:
    base = COMPONENT_KINDS[kind]
    what = f"register.{kind}({getattr(cls, '__name__', cls)!r})"
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise PluginError(
            f"{what}: expected a subclass of fedsearch.{base.__name__}", plugin=plugin
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise PluginError(f"{what}: the class is abstract; implement {missing}", plugin=plugin)
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise PluginError(
            f"{what}: set a class attribute `name` of lowercase letters, digits and underscores "
            f"(got {name!r})",
            plugin=plugin,
        )
    if not (inspect.isclass(cls.Params) and issubclass(cls.Params, ComponentParams)):
        raise PluginError(
            f"{what}: `Params` must subclass fedsearch.ComponentParams", plugin=plugin
        )
    try:
        cls.Params()
    except ValidationError as error:
        raise PluginError(
            f"{what}: every field of `Params` needs a default ({error.errors()[0]['loc']})",
            plugin=plugin,
        ) from None
    _check_per_layer_fields(cls, what, plugin)
    if issubclass(cls, Objective):
        metric = getattr(cls, "metric", None)
        if not isinstance(metric, str) or not _NAME_PATTERN.match(metric):
            raise PluginError(
                f"{what}: set a class attribute `metric` of lowercase letters, digits and "
                f"underscores (got {metric!r})",
                plugin=plugin,
            )
        if cls.direction not in ("minimize", "maximize"):
            raise PluginError(
                f"{what}: `direction` must be 'minimize' or 'maximize' (got {cls.direction!r})",
                plugin=plugin,
            )
    if issubclass(cls, Compressor) and getattr(cls, "stage", None) not in STAGES:
        raise PluginError(
            f"{what}: set `stage` to one of {', '.join(STAGES)} "
            f"(got {getattr(cls, 'stage', None)!r})",
            plugin=plugin,
        )


def _check_per_layer_fields(cls: type[Component], what: str, plugin: str) -> None:
    fields = list(cls.Params.model_fields)
    defaults = cls.Params()
    for position, field in enumerate(fields):
        hint = search_hint(cls.Params, field)
        if not isinstance(hint, SearchPerLayer):
            continue
        if hint.count not in fields[:position] or not isinstance(
            getattr(defaults, hint.count), int
        ):
            raise PluginError(
                f"{what}: SearchPerLayer on {field!r} names count={hint.count!r}; it must be "
                "an int field declared before it",
                plugin=plugin,
            )
        if not isinstance(getattr(defaults, field), list):
            raise PluginError(
                f"{what}: SearchPerLayer field {field!r} must be a list", plugin=plugin
            )


@dataclass(frozen=True)
class ComponentSpec:
    """A validated component choice that builds fresh instances (stateful ones need one per run)."""

    cls: type[Component]
    params: ComponentParams

    @property
    def name(self) -> str:
        """The component's name."""
        return self.cls.name

    def build(self) -> Component:
        """A new instance with the validated params."""
        return self.cls(self.params)
