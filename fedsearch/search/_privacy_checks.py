"""Before a study is stored: privacy objectives and limits need a private run."""

from __future__ import annotations

from collections.abc import Sequence

from fedsearch._errors import ConfigError
from fedsearch.components import DifferentiallyPrivate
from fedsearch.config import StudyConfig
from fedsearch.host import ComponentRegistry, ComponentSpec
from fedsearch.search._space import STRATEGY_SLOT, SearchSpace


def check_privacy(
    config: StudyConfig,
    space: SearchSpace,
    registry: ComponentRegistry,
    components: Sequence[ComponentSpec],
    source: str,
) -> None:
    """Refuse ``epsilon`` or ``max_epsilon`` when some trial would run without DP.

    Args:
        config: The study.
        space: Its resolved search space (a searched strategy counts).
        registry: The installed components.
        components: The study's strategy and middleware.
        source: The study file, for the message.
    """
    searched = space.slots.get(STRATEGY_SLOT, [])
    private_strategies = [
        issubclass(registry.get("strategy", name).cls, DifferentiallyPrivate) for name in searched
    ]
    private_components = [issubclass(spec.cls, DifferentiallyPrivate) for spec in components]
    if config.teacher is not None and any(private_strategies + private_components):
        raise ConfigError(
            "the teacher is trained federatedly without differential privacy, so a private "
            "study's guarantee would not hold; remove the [teacher] table (and distillation)",
            source=source,
            field="teacher",
        )
    wants = [ref.name for ref in config.search.objectives if ref.name == "epsilon"]
    if config.search.constraints.max_epsilon is not None:
        wants.append("max_epsilon")
    if not wants:
        return
    if searched:
        private = all(
            issubclass(registry.get("strategy", name).cls, DifferentiallyPrivate)
            for name in searched
        )
        components = [spec for spec in components if spec.cls.kind == "middleware"]
    else:
        private = False
    private = private or any(issubclass(spec.cls, DifferentiallyPrivate) for spec in components)
    if not private:
        raise ConfigError(
            f"{' and '.join(wants)} need a differentially private run; set federation.strategy "
            'to { name = "dp_fedavg" } or add the middleware { name = "local_dp" }',
            source=source,
            field="search.objectives" if "epsilon" in wants else "search.constraints.max_epsilon",
        )
