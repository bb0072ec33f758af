"""The plugin host: plugin manager factory, component registry, registrar."""

from __future__ import annotations

from fedsearch.host._codecs import DOWNLINK, UPLINK, CodecPipelineSpec, codec_pipeline_spec
from fedsearch.host._factories import load_factory, with_factories
from fedsearch.host._manager import (
    ALLOW_ENV,
    BLOCK_ENV,
    ENTRY_POINT_GROUP,
    PluginInfo,
    describe_plugins,
    get_plugin_manager,
    get_registry,
)
from fedsearch.host._registry import (
    ComponentRegistry,
    ComponentSpec,
    RegisteredComponent,
    Registrar,
    unknown_name_message,
    validate_params,
    validation_message,
)

__all__ = [
    "ALLOW_ENV",
    "BLOCK_ENV",
    "DOWNLINK",
    "ENTRY_POINT_GROUP",
    "UPLINK",
    "CodecPipelineSpec",
    "ComponentRegistry",
    "ComponentSpec",
    "PluginInfo",
    "RegisteredComponent",
    "Registrar",
    "codec_pipeline_spec",
    "describe_plugins",
    "get_plugin_manager",
    "get_registry",
    "load_factory",
    "unknown_name_message",
    "validate_params",
    "validation_message",
    "with_factories",
]
