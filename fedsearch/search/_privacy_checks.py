"""Before a study is stored: privacy objectives and limits need a private run."""

from __future__ import annotations

from collections.abc import Sequence

from fedsearch._errors import ConfigError
from fedsearch.components import DifferentiallyPrivate
from fedsearch.config import StudyConfig
from fedsearch.host import ComponentRegistry, ComponentSpec
from fedsearch.search._space import MIDDLEWARE_SLOT, NONE, STRATEGY_SLOT, SearchSpace


def check_privacy(
    config: StudyConfig,
    space: SearchSpace,
    registry: ComponentRegistry,
    components: Sequence[ComponentSpec],
    source: str,
) -> None:
    """Refuse a DP study with a teacher, two DP mechanisms accounted as one, and
    ``epsilon`` or ``max_epsilon`` when some trial would run without DP.

    Args:
        config: The study.
        space: Its resolved search space (a searched strategy or middleware counts).
        registry: The installed components.
        components: The study's strategy and middleware.
        source: The study file, for the message.
    """

    def private(kind: str, name: str) -> bool:
        return issubclass(registry.get(kind, name).cls, DifferentiallyPrivate)

    strategies = space.slots.get(STRATEGY_SLOT, [])
    searched = [name for name in space.slots.get(MIDDLEWARE_SLOT, []) if name != NONE]
    if strategies:  # the searched strategy replaces federation.strategy
        components = [spec for spec in components if spec.cls.kind == "middleware"]
    fixed_private = [
        spec.name for spec in components if issubclass(spec.cls, DifferentiallyPrivate)
    ]
    private_strategies = [name for name in strategies if private("strategy", name)]
    private_searched = [name for name in searched if private("middleware", name)]
    if config.teacher is not None and (fixed_private or private_strategies or private_searched):
        raise ConfigError(
            "the teacher is trained federatedly without differential privacy, so a private "
            "study's guarantee would not hold; remove the [teacher] table (and distillation)",
            source=source,
            field="teacher",
        )
    if len(fixed_private) > 1 or (private_strategies and fixed_private):
        first, second = (fixed_private + private_strategies)[:2]
        raise ConfigError(
            f"{first!r} and {second!r} would both run, but a trial records one DP guarantee; "
            "keep one of them",
            source=source,
            field="federation.middleware",
        )
    if private_searched and (others := fixed_private + private_strategies):
        raise ConfigError(
            f"the searched {private_searched[0]!r} would run beside {others[0]!r}, but a trial "
            "records one DP guarantee; remove one of them",
            source=source,
            field=f"search.slots.{MIDDLEWARE_SLOT}",
        )
    wants = [ref.name for ref in config.search.objectives if ref.name == "epsilon"]
    if config.search.constraints.max_epsilon is not None:
        wants.append("max_epsilon")
    if not wants:
        return
    every_strategy = bool(strategies) and len(private_strategies) == len(strategies)
    every_middleware = bool(searched) and private_searched == space.slots[MIDDLEWARE_SLOT]
    if fixed_private or every_strategy or every_middleware:
        return
    field = "search.objectives" if "epsilon" in wants else "search.constraints.max_epsilon"
    if private_searched:
        plain = [name for name in space.slots[MIDDLEWARE_SLOT] if name not in private_searched]
        raise ConfigError(
            f"{' and '.join(wants)} need every trial to run DP, but search.slots.middleware "
            f"also tries {', '.join(map(repr, plain))}; list only differentially private "
            "middleware there",
            source=source,
            field=field,
        )
    raise ConfigError(
        f"{' and '.join(wants)} need a differentially private run; set federation.strategy "
        'to { name = "dp_fedavg" } or add the middleware { name = "local_dp" }',
        source=source,
        field=field,
    )
