"""Search spaces resolved against the plugins: conditional, validated dimensions."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from fedsearch._errors import ConfigError
from fedsearch.components import (
    PIPELINE_SEPARATOR,
    STAGES,
    Component,
    SearchChoices,
    SearchPerLayer,
    SearchRange,
    search_hint,
)
from fedsearch.config import DimensionConfig
from fedsearch.host import DOWNLINK, UPLINK, ComponentRegistry, codec_pipeline_spec, validate_params

ARCHITECTURE_SLOT = "architecture"
CODEC_SLOTS: dict[str, str] = {"uplink_codec": UPLINK, "downlink_codec": DOWNLINK}
"""Slots whose candidates are codec pipelines (``"topk+qsgd"``), by channel direction."""
STRATEGY_SLOT = "strategy"
"""Slot whose candidates are server strategies (``dp_fedavg``: searched clip norm, noise)."""
MIDDLEWARE_SLOT = "middleware"
"""Slot whose candidate is appended to ``federation.middleware`` (``local_dp``'s clip, noise)."""
SLOTS: tuple[str, ...] = (
    ARCHITECTURE_SLOT,
    *STAGES,
    *CODEC_SLOTS,
    STRATEGY_SLOT,
    MIDDLEWARE_SLOT,
)
NONE = "none"
"""Slot candidate that switches a compressor stage (or the searched middleware) off."""


@dataclass(frozen=True)
class Dimension:
    """One param of one component: searched (``distribution``) or fixed (``value``)."""

    slot: str
    component: str
    field: str
    distribution: BaseDistribution | None
    value: Any = None
    per_layer: str | None = None
    """For a per-layer-group dimension, the field holding the number of layers."""

    @property
    def name(self) -> str:
        """Qualified name, also the Optuna param name: ``prune.magnitude.sparsity``.

        A per-layer-group dimension has one Optuna param per layer, named
        ``<name>.<layer index>`` (``architecture.mlp.widths.0``).
        """
        return f"{self.slot}.{self.component}.{self.field}"

    def layer_name(self, index: int) -> str:
        """Optuna param name of one layer of a per-layer-group dimension."""
        return f"{self.name}.{index}"

    def describe(self) -> str:
        """Human-readable range, choices or fixed value."""
        dist = self.distribution
        if dist is None:
            return f"fixed {self.value!r}"
        if isinstance(dist, CategoricalDistribution):
            return "choices " + ", ".join(repr(choice) for choice in dist.choices)
        step = f" step {dist.step}" if dist.step not in (None, 1) else ""
        return f"[{dist.low}, {dist.high}]{step}{' log' if dist.log else ''}"


@dataclass(frozen=True)
class ComponentChoice:
    """A component picked for a trial, with its params."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """What one trial runs: a student family, at most one compressor per stage, and
    the codec pipelines of the codec slots the space searches (others follow the study).
    """

    architecture: ComponentChoice
    compressors: dict[str, ComponentChoice]
    codecs: dict[str, tuple[ComponentChoice, ...]] = field(default_factory=dict)
    strategy: ComponentChoice | None = None
    """The searched strategy (``slots.strategy``); None: the study's ``federation.strategy``."""
    middleware: ComponentChoice | None = None
    """The searched middleware (``slots.middleware``), run after ``federation.middleware``;
    None: not searched, or ``"none"`` chosen."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, stored as a trial user attribute."""
        slots = {ARCHITECTURE_SLOT: self.architecture, **self.compressors}
        chosen: dict[str, Any] = {
            slot: {"name": c.name, "params": c.params} for slot, c in slots.items()
        }
        for slot, stages in self.codecs.items():
            chosen[slot] = [{"name": c.name, "params": c.params} for c in stages]
        if self.strategy is not None:
            chosen[STRATEGY_SLOT] = {"name": self.strategy.name, "params": self.strategy.params}
        if self.middleware is not None:
            chosen[MIDDLEWARE_SLOT] = {
                "name": self.middleware.name,
                "params": self.middleware.params,
            }
        return chosen


@dataclass(frozen=True)
class Sourced:
    """A search-space entry and the file it came from (for error messages)."""

    value: Any
    source: str


class SearchSpace:
    """Candidate components per slot and the dimensions of each candidate."""

    def __init__(
        self, slots: dict[str, list[str]], dimensions: dict[tuple[str, str], list[Dimension]]
    ):
        self.slots = slots
        self.dimensions = dimensions

    @classmethod
    def resolve(
        cls,
        slots: Mapping[str, Sourced],
        overrides: Mapping[str, Sourced],
        registry: ComponentRegistry,
    ) -> SearchSpace:
        """Validate slots and dimension overrides against the registered components.

        Raises:
            ConfigError: Unknown slot, component or dimension (with the closest
                match), a component in the wrong slot, or a value its params reject.
        """
        resolved_slots: dict[str, list[str]] = {}
        dimensions: dict[tuple[str, str], list[Dimension]] = {}
        for slot, entry in slots.items():
            resolved_slots[slot] = _check_slot(slot, entry, registry)
            for name in resolved_slots[slot]:
                if name != NONE:
                    dimensions[slot, name] = [
                        dimension
                        for component in _components(registry, slot, name)
                        for dimension in _component_dimensions(slot, component, overrides)
                    ]
        if ARCHITECTURE_SLOT not in resolved_slots:
            raise ConfigError(
                'no student families to search; add slots.architecture = ["mlp", ...]',
                source=next((entry.source for entry in slots.values()), None),
                field="slots",
            )
        _check_overrides_used(overrides, dimensions, _unlisted_dimensions(registry, dimensions))
        ordered = {slot: resolved_slots[slot] for slot in SLOTS if slot in resolved_slots}
        return cls(ordered, dimensions)

    def suggest(self, trial: optuna.Trial) -> Selection:
        """Ask ``trial`` for a selection; only the chosen components' params are sampled."""
        chosen: dict[str, ComponentChoice] = {}
        codecs: dict[str, tuple[ComponentChoice, ...]] = {}
        for slot, candidates in self.slots.items():
            name = (
                candidates[0]
                if len(candidates) == 1
                else trial.suggest_categorical(slot, candidates)
            )
            if name == NONE:
                continue
            dims = self.dimensions[slot, name]
            if slot in CODEC_SLOTS:
                codecs[slot] = tuple(
                    ComponentChoice(
                        stage, _suggest_params(trial, [d for d in dims if d.component == stage])
                    )
                    for stage in name.split(PIPELINE_SEPARATOR)
                )
                continue
            params = _suggest_params(trial, dims)
            chosen[slot] = ComponentChoice(name, params)
        architecture = chosen.pop(ARCHITECTURE_SLOT)
        strategy = chosen.pop(STRATEGY_SLOT, None)
        middleware = chosen.pop(MIDDLEWARE_SLOT, None)
        return Selection(architecture, chosen, codecs, strategy, middleware)

    def rows(self) -> list[tuple[str, str, str]]:
        """``(name, condition, range)`` for display by ``fedsearch validate``."""
        rows = []
        for slot, candidates in self.slots.items():
            rows.append((slot, "always", "choices " + ", ".join(candidates)))
            for name in candidates:
                condition = f"{slot} == {name!r}" if len(candidates) > 1 else "always"
                for dim in self.dimensions.get((slot, name), []):
                    if dim.per_layer is None:
                        rows.append((dim.name, condition, dim.describe()))
                        continue
                    count = f"{slot}.{name}.{dim.per_layer}"
                    layer_condition = f"i < {count}"
                    if condition != "always":
                        layer_condition = f"{condition} and {layer_condition}"
                    rows.append((dim.name + ".<i>", layer_condition, dim.describe()))
        return rows


def slot_kind(slot: str) -> str:
    """The component kind of a slot's candidates."""
    if slot in CODEC_SLOTS:
        return "codec"
    if slot in (STRATEGY_SLOT, MIDDLEWARE_SLOT):
        return slot
    return "architecture" if slot == ARCHITECTURE_SLOT else "compressor"


def _components(registry: ComponentRegistry, slot: str, name: str) -> list[type[Component]]:
    """The component classes of a candidate (the stages of a codec pipeline)."""
    names = name.split(PIPELINE_SEPARATOR) if slot in CODEC_SLOTS else [name]
    return [registry.get(slot_kind(slot), part).cls for part in names]


def _check_slot(slot: str, entry: Sourced, registry: ComponentRegistry) -> list[str]:
    where = f"slots.{slot}"
    if slot not in SLOTS:
        close = difflib.get_close_matches(slot, SLOTS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"unknown slot; {hint}slots are: {', '.join(SLOTS)}", source=entry.source, field=where
        )
    names = list(entry.value)
    if not names or len(set(names)) != len(names):
        raise ConfigError(
            "list each candidate once, at least one", source=entry.source, field=where
        )
    for name in names:
        if name == NONE:
            if slot in (ARCHITECTURE_SLOT, STRATEGY_SLOT) or slot in CODEC_SLOTS:
                raise ConfigError(f"the {slot} cannot be 'none'", source=entry.source, field=where)
            continue
        if slot in CODEC_SLOTS:
            stages = [(stage, {}) for stage in name.split(PIPELINE_SEPARATOR)]
            codec_pipeline_spec(
                registry, stages, direction=CODEC_SLOTS[slot], source=entry.source, field=where
            )
            continue
        component = registry.get(slot_kind(slot), name, source=entry.source, field=where).cls
        stage = getattr(component, "stage", slot)
        if stage != slot:
            raise ConfigError(
                f"{name!r} is a {stage} compressor; list it under slots.{stage}",
                source=entry.source,
                field=where,
            )
    return names


def _component_dimensions(
    slot: str, component: type[Component], overrides: Mapping[str, Sourced]
) -> list[Dimension]:
    dimensions = []
    for field_name in component.Params.model_fields:
        hint = search_hint(component.Params, field_name)
        count = hint.count if isinstance(hint, SearchPerLayer) else None
        override = overrides.get(f"{slot}.{component.name}.{field_name}")
        dimensions.append(_dimension(slot, component, field_name, override, count))
    return dimensions


def _dimension(
    slot: str,
    component: type[Component],
    field_name: str,
    override: Sourced | None,
    per_layer: str | None,
) -> Dimension:
    default = getattr(component.Params(), field_name)
    if per_layer is not None:
        default = default[0] if default else None
    if override is None:
        return _from_hint(slot, component, field_name, default, per_layer)
    config: DimensionConfig = override.value
    where = f"dimensions.{slot}.{component.name}"

    def check(value: Any) -> Any:
        if per_layer is None:
            params = validate_params(
                component, {field_name: value}, source=override.source, field=where
            )
            return getattr(params, field_name)
        params = validate_params(
            component, {per_layer: 1, field_name: [value]}, source=override.source, field=where
        )
        return getattr(params, field_name)[0]

    def make(distribution: BaseDistribution | None, value: Any = None) -> Dimension:
        return Dimension(slot, component.name, field_name, distribution, value, per_layer)

    if "value" in config.model_fields_set:
        return make(None, check(config.value))
    if config.choices is not None:
        return make(CategoricalDistribution([check(choice) for choice in config.choices]))
    low, high = check(config.low), check(config.high)
    return make(_range(low, high, config.step, config.log, default))


def _from_hint(
    slot: str, component: type[Component], field_name: str, default: Any, per_layer: str | None
) -> Dimension:
    hint = search_hint(component.Params, field_name)
    if isinstance(hint, SearchPerLayer):
        hint = hint.values
    distribution = None
    if isinstance(hint, SearchChoices):
        distribution = CategoricalDistribution(list(hint.values))
    elif isinstance(hint, SearchRange):
        distribution = _range(hint.low, hint.high, hint.step, hint.log, default)
    value = None if distribution is not None else default
    return Dimension(slot, component.name, field_name, distribution, value, per_layer)


def _range(low: Any, high: Any, step: float | None, log: bool, default: Any) -> BaseDistribution:
    if isinstance(default, int) and not isinstance(default, bool):
        return IntDistribution(int(low), int(high), log=log, step=1 if log else int(step or 1))
    return FloatDistribution(float(low), float(high), log=log, step=None if log else step)


def _suggest_params(trial: optuna.Trial, dims: list[Dimension]) -> dict[str, Any]:
    """Params of one component; a per-layer dimension gets one value per layer."""
    params: dict[str, Any] = {}
    for dim in dims:
        if dim.per_layer is None:
            params[dim.field] = _suggest(trial, dim, dim.name)
        else:
            count = int(params[dim.per_layer])
            params[dim.field] = [_suggest(trial, dim, dim.layer_name(i)) for i in range(count)]
    return params


def _suggest(trial: optuna.Trial, dim: Dimension, name: str) -> Any:
    dist = dim.distribution
    if dist is None:
        return dim.value
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _unlisted_dimensions(
    registry: ComponentRegistry, dimensions: dict[tuple[str, str], list[Dimension]]
) -> set[str]:
    """Dimension names of installed components that the slots do not list.

    A space file may tune components that a study's own ``[search.slots]``
    then leaves out; those overrides are simply unused.
    """
    names = set()
    for slot in SLOTS:
        for component in registry.names(slot_kind(slot)):
            cls = registry.get(slot_kind(slot), component).cls
            if (slot, component) in dimensions or getattr(cls, "stage", slot) != slot:
                continue
            names |= {f"{slot}.{component}.{field}" for field in cls.Params.model_fields}
    return names


def _check_overrides_used(
    overrides: Mapping[str, Sourced],
    dimensions: dict[tuple[str, str], list[Dimension]],
    unlisted: set[str],
) -> None:
    known = [dim.name for dims in dimensions.values() for dim in dims]
    for name, entry in overrides.items():
        if name not in known and name not in unlisted:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"no such dimension among the listed components; {hint}names are "
                "<slot>.<component>.<param>, and the component must be listed in slots",
                source=entry.source,
                field=f"dimensions.{name}",
            )
