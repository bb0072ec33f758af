"""Checks of a study's ``[tiers]`` table against its search space and federation."""

from __future__ import annotations

from fedsearch._errors import ConfigError
from fedsearch.components import Architecture
from fedsearch.config import StudyConfig
from fedsearch.host import ComponentRegistry
from fedsearch.search._space import (
    ARCHITECTURE_SLOT,
    MIDDLEWARE_SLOT,
    NONE,
    STRATEGY_SLOT,
    SearchSpace,
)

TIER_STRATEGIES = ("fedavg",)
"""Tiered studies aggregate slices by example-weighted averaging (FedAvg's rule)."""


def check_tiers(
    config: StudyConfig,
    space: SearchSpace,
    registry: ComponentRegistry,
    source: str,
) -> None:
    """Refuse what a heterogeneous study cannot run, naming the field and the fix.

    Raises:
        ConfigError: An objective needs ``[tiers]`` that the study lacks, or the
            tiered study searches an architecture that cannot be sliced, a
            compressor stage, or uses a strategy, middleware or delta downlink
            that slices do not support.
    """
    if config.tiers is None:
        if any(ref.name == "round_time" for ref in config.search.objectives):
            raise ConfigError(
                "round_time is measured by the heterogeneous simulation; add a [tiers] table "
                "or remove it from search.objectives",
                source=source,
                field="search.objectives",
            )
        return
    if config.search.pruner is not None:
        raise ConfigError(
            "multi-fidelity pruning does not rank tiered trials yet (one artifact per tier); "
            "remove search.pruner from a study with [tiers]",
            source=source,
            field="search.pruner",
        )
    for slot, names in space.slots.items():
        if slot == ARCHITECTURE_SLOT:
            for name in names:
                cls = registry.get("architecture", name).cls
                if getattr(cls, "width_scaled", None) is Architecture.width_scaled:
                    raise ConfigError(
                        f"architecture {name!r} cannot be sliced into tiers (it does not "
                        "implement width_scaled); search mlp, cnn or dscnn",
                        source=source,
                        field="search.slots.architecture",
                    )
        elif slot == STRATEGY_SLOT and set(names) - set(TIER_STRATEGIES):
            raise ConfigError(
                "tiered studies aggregate slices with fedavg's rule; set "
                'search.slots.strategy to ["fedavg"] or remove it',
                source=source,
                field="search.slots.strategy",
            )
        elif slot == MIDDLEWARE_SLOT and set(names) - {NONE}:
            raise ConfigError(
                "tiered studies send each client its slice and run no middleware; set "
                'search.slots.middleware to ["none"] or remove it',
                source=source,
                field="search.slots.middleware",
            )
        elif slot in ("prune", "quantize", "distill", "factorize") and set(names) - {NONE}:
            raise ConfigError(
                f"a tiered study compresses each tier by its own recipe; set search.slots.{slot} "
                'to ["none"] (or use search_spaces/tiers.toml)',
                source=source,
                field=f"search.slots.{slot}",
            )
    federation = config.federation
    if federation.strategy.name not in TIER_STRATEGIES:
        raise ConfigError(
            f"tiered studies aggregate slices with fedavg's rule; set strategy to fedavg "
            f"(got {federation.strategy.name!r})",
            source=source,
            field="federation.strategy",
        )
    if federation.middleware or federation.downlink != "model":
        raise ConfigError(
            'tiered studies send each client its slice: use downlink = "model" and no middleware',
            source=source,
            field="federation.middleware" if federation.middleware else "federation.downlink",
        )
