"""Building the plugin manager and the component registry (never at import time)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from fedsearch import hookspecs
from fedsearch._errors import FedsearchError, PluginError
from fedsearch.host._registry import ComponentRegistry, Registrar

ENTRY_POINT_GROUP = "fedsearch"
ALLOW_ENV = "FEDSEARCH_PLUGINS"
"""Comma-separated allow-list of plugin (entry-point) names; unset means all."""
BLOCK_ENV = "FEDSEARCH_BLOCK_PLUGINS"
"""Comma-separated plugin (entry-point) names never to load."""


def _names_from_env(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def get_plugin_manager(*, extra_plugins: Iterable[Any] = ()) -> pluggy.PluginManager:
    """Build a plugin manager and load the plugins of the ``fedsearch`` entry-point group.

    Built-in plugins are found exactly like third-party ones. ``FEDSEARCH_PLUGINS``
    (an allow-list) and ``FEDSEARCH_BLOCK_PLUGINS`` (a block-list) select which
    entry points load.

    Args:
        extra_plugins: Plugin objects (modules or instances with hook
            implementations) registered after the entry points; for tests and
            embedding.

    Raises:
        PluginError: A plugin failed to import, or the allow-list names a
            plugin that no installed package provides.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    allowed = _names_from_env(ALLOW_ENV)
    blocked = _names_from_env(BLOCK_ENV) or set()
    available = {entry.name for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    for name in sorted((allowed or set()) - available):
        raise PluginError(
            f"{ALLOW_ENV} names it but no installed package provides it "
            f"(installed: {', '.join(sorted(available)) or 'none'}); fix the variable or "
            f"`pip install` the plugin",
            plugin=name,
        )
    for name in sorted(available):
        if name in blocked or (allowed is not None and name not in allowed):
            manager.set_blocked(name)
            continue
        _load_entry_point(manager, name)
    for plugin in extra_plugins:
        manager.register(plugin)
    return manager


def _load_entry_point(manager: pluggy.PluginManager, name: str) -> None:
    try:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    except pluggy.PluginValidationError as error:
        raise PluginError(f"invalid hook implementation: {error}", plugin=name) from error
    except Exception as error:
        raise PluginError(
            f"failed to import ({type(error).__name__}: {error}); reinstall it or block it "
            f"with {BLOCK_ENV}={name}",
            plugin=name,
        ) from error


def get_registry(manager: pluggy.PluginManager | None = None) -> ComponentRegistry:
    """Collect the components of every loaded plugin into a registry.

    Args:
        manager: A plugin manager; a new one from ``get_plugin_manager()`` when omitted.

    Raises:
        PluginError: A plugin registered something invalid or a duplicate name,
            or its hook raised.
    """
    manager = manager or get_plugin_manager()
    versions = {
        manager.get_name(plugin): distribution.version
        for plugin, distribution in manager.list_plugin_distinfo()
    }
    registry = ComponentRegistry()
    for implementation in manager.hook.fedsearch_register_components.get_hookimpls():
        plugin = implementation.plugin_name
        register = Registrar(registry, plugin=plugin, plugin_version=versions.get(plugin))
        try:
            implementation.function(register=register)
        except FedsearchError:
            raise
        except Exception as error:
            raise PluginError(
                f"fedsearch_register_components raised {type(error).__name__}: {error}",
                plugin=plugin,
            ) from error
    return registry


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin and what it contributes."""

    name: str
    distribution: str | None
    version: str | None
    components: dict[str, list[str]] = field(default_factory=dict)


def describe_plugins(
    manager: pluggy.PluginManager, registry: ComponentRegistry
) -> list[PluginInfo]:
    """One entry per loaded plugin, with its distribution and components by kind."""
    distributions = {
        manager.get_name(plugin): distribution
        for plugin, distribution in manager.list_plugin_distinfo()
    }
    infos = []
    for name, _plugin in sorted(manager.list_name_plugin(), key=lambda item: str(item[0])):
        if _plugin is None:  # blocked
            continue
        components: dict[str, list[str]] = {}
        for component in registry:
            if component.plugin == name:
                components.setdefault(component.kind, []).append(component.name)
        distribution = distributions.get(name)
        infos.append(
            PluginInfo(
                name=name,
                distribution=distribution.project_name if distribution else None,
                version=distribution.version if distribution else None,
                components=components,
            )
        )
    return infos
