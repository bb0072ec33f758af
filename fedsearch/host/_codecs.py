"""Codec pipelines: validated chains of codec specs that build fresh instances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedsearch._errors import ConfigError
from fedsearch.components import PIPELINE_SEPARATOR, Codec, compose_codecs
from fedsearch.host._registry import ComponentRegistry, ComponentSpec

UPLINK = "uplink"
DOWNLINK = "downlink"


@dataclass(frozen=True)
class CodecPipelineSpec:
    """Validated codec stages; ``build`` returns a fresh pipeline (codecs may keep state)."""

    stages: tuple[ComponentSpec, ...]

    @property
    def name(self) -> str:
        """Stage names joined by ``+``."""
        return PIPELINE_SEPARATOR.join(stage.name for stage in self.stages)

    @property
    def stateful(self) -> bool:
        """Whether a stage keeps per-client state."""
        return any(getattr(stage.cls, "stateful", False) for stage in self.stages)

    def build(self) -> Codec:
        """New codec instances, chained."""
        codecs = [stage.build() for stage in self.stages]
        assert all(isinstance(codec, Codec) for codec in codecs)
        return compose_codecs(codecs)  # type: ignore[arg-type]

    def as_list(self) -> list[dict[str, Any]]:
        """JSON-friendly form: one ``{"name", "params"}`` per stage."""
        return [
            {"name": stage.name, "params": stage.params.model_dump(mode="json")}
            for stage in self.stages
        ]


def codec_pipeline_spec(
    registry: ComponentRegistry,
    stages: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    direction: str,
    source: str | None = None,
    field: str | None = None,
) -> CodecPipelineSpec:
    """Validate a codec pipeline for one direction of the channel.

    Args:
        registry: Components of the loaded plugins.
        stages: ``(name, params)`` per codec, in encoding order.
        direction: ``"uplink"`` or ``"downlink"``.
        source: File the pipeline comes from (for errors).
        field: Dotted field of the pipeline in that file (for errors).

    Raises:
        ConfigError: Unknown codec, bad params, a stage that cannot be followed
            by another or cannot end a pipeline, or per-client state on the
            downlink.
    """
    specs = []
    for position, (name, params) in enumerate(stages):
        where = f"{field}[{position}]" if field and len(stages) > 1 else field
        specs.append(registry.spec("codec", name, params, source=source, field=where))
    pipeline = CodecPipelineSpec(tuple(specs))
    if not specs:
        raise ConfigError("list at least one codec", source=source, field=field)
    try:
        pipeline.build()
    except ValueError as error:
        raise ConfigError(str(error), source=source, field=field) from None
    if direction == DOWNLINK and pipeline.stateful:
        raise ConfigError(
            f"{pipeline.name!r} keeps per-client state (error feedback), which is for the "
            'uplink; on the downlink use federation.downlink = "delta", whose per-client '
            "reference already resends what a lossy codec dropped, and remove error_feedback",
            source=source,
            field=field,
        )
    return pipeline
