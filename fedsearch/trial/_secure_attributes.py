"""Trial attributes of secure aggregation: protocol bytes, overhead, dropouts."""

from __future__ import annotations

from typing import Any

from fedsearch.components import SecureAggregator
from fedsearch.federated import SimulationResult
from fedsearch.search._resolve import ResolvedStudy

PROTOCOL_PREFIXES = ("secagg.", "he.")
"""Names of the protocol messages secure aggregators send (``transfer_bytes``)."""


def secure_aggregator(study: ResolvedStudy) -> SecureAggregator | None:
    """A fresh instance of the study's secure aggregator (it may keep keys for a run), if any."""
    if study.secure_aggregation is None:
        return None
    built = study.secure_aggregation.build()
    assert isinstance(built, SecureAggregator)
    return built


def protocol_bytes(simulation: SimulationResult) -> dict[str, int]:
    """Bytes of every secure aggregation message of the run, by message name."""
    named = {**simulation.one_time_by_name}
    for name, num_bytes in simulation.protocol_by_name.items():
        named[name] = named.get(name, 0) + num_bytes
    return {
        name: size for name, size in sorted(named.items()) if name.startswith(PROTOCOL_PREFIXES)
    }


def secure_attributes(study: ResolvedStudy, simulation: SimulationResult) -> dict[str, Any]:
    """``<metric>`` (protocol bytes beyond a plain float32 uplink), bytes by message, dropouts.

    ``metric`` is the aggregator's (``secure_aggregation_overhead_bytes`` or
    ``he_overhead_bytes``). Empty for a study without secure aggregation.
    """
    spec = study.secure_aggregation
    if spec is None:
        return {}
    by_message = protocol_bytes(simulation)
    total = sum(by_message.values())
    metric = getattr(spec.cls, "metric", SecureAggregator.metric)
    return {
        "secure_aggregation": spec.name,
        "secure_aggregation_bytes": total,
        "secure_aggregation_bytes_by_message": by_message,
        "secure_aggregation_plain_bytes": simulation.plain_uplink_bytes,
        metric: total - simulation.plain_uplink_bytes,
        "dropped_clients": simulation.dropped_clients,
    }
