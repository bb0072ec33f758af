"""What a study may combine with secure aggregation, checked before it is stored."""

from __future__ import annotations

from fedsearch._errors import ConfigError
from fedsearch.components import Middleware, SecureAggregator
from fedsearch.config import ComponentRef, StudyConfig
from fedsearch.host import ComponentRegistry, ComponentSpec
from fedsearch.search._space import MIDDLEWARE_SLOT, NONE, SearchSpace

PLAIN_UPLINK = "float32"
"""The only uplink codec secure aggregation accepts: its protocol replaces the uplink encoding."""
FIELD = "federation.secure_aggregation"


def check_secure_aggregation(
    secure: ComponentSpec,
    config: StudyConfig,
    space: SearchSpace,
    registry: ComponentRegistry,
    source: str,
) -> None:
    """Refuse what is unsound with ``secure``, naming the field and the fix.

    Sound: compressors (they act on the model), downlink codecs, middleware
    whose client-side hooks clip or add noise (DP) before the protocol. Not:
    an uplink codec other than float32 (the protocol sums masked vectors or
    ciphertexts; a sparse or sign encoding is not linear under that sum, so it
    cannot carry them), middleware that inspects each update on the server
    (``on_server_receive``: the server never sees one), and settings the
    protocol itself cannot hold (``SecureAggregator.check``).

    Raises:
        ConfigError: The first unsound combination found.
    """
    name = secure.name
    federation = config.federation
    uplink = federation.uplink_codec
    stages = [uplink] if isinstance(uplink, ComponentRef) else list(uplink)
    if [stage.name for stage in stages] != [PLAIN_UPLINK]:
        codec = "+".join(stage.name for stage in stages)
        raise ConfigError(
            f"uplink codec {codec!r} is not linear under {name}'s sum of masked vectors "
            f"or ciphertexts; remove uplink_codec (the protocol sets the uplink's width)",
            source=source,
            field="federation.uplink_codec",
        )
    searched = [c for c in space.slots.get("uplink_codec", []) if c != PLAIN_UPLINK]
    if searched:
        raise ConfigError(
            f"the search space tries uplink codecs {', '.join(searched)}, which {name} cannot "
            'carry; set search.slots.uplink_codec = ["float32"] or drop secure_aggregation',
            source=source,
            field="search.slots.uplink_codec",
        )
    configured = [
        (ref.name, f"federation.middleware[{index}]")
        for index, ref in enumerate(federation.middleware)
    ]
    searched_middleware = [
        (candidate, f"search.slots.{MIDDLEWARE_SLOT}")
        for candidate in space.slots.get(MIDDLEWARE_SLOT, [])
        if candidate != NONE
    ]
    for middleware, field in configured + searched_middleware:
        cls = registry.get("middleware", middleware, source=source, field=field).cls
        if getattr(cls, "on_server_receive", None) is not Middleware.on_server_receive:
            raise ConfigError(
                f"middleware {middleware!r} reads each update on the server "
                f"(on_server_receive), but under {name} the server never sees one; "
                "remove it or secure_aggregation",
                source=source,
                field=field,
            )
    built = secure.build()
    assert isinstance(built, SecureAggregator)
    clients = max(1, round(federation.fraction * federation.num_clients))
    try:
        built.check(clients)
    except ValueError as error:
        raise ConfigError(str(error), source=source, field=FIELD) from None
