"""Discovery through entry points, allow/block lists, and registration errors."""

from __future__ import annotations

import types
from typing import Annotated

import pytest
import torch

from fedsearch import (
    Architecture,
    ComponentParams,
    Compressor,
    Objective,
    PluginError,
    SearchChoices,
    SearchPerLayer,
    get_plugin_manager,
    get_registry,
    hookimpl,
)
from fedsearch.host import ALLOW_ENV, BLOCK_ENV, describe_plugins

BUILTIN_PLUGINS = {
    "builtin.architectures",
    "builtin.codecs",
    "builtin.datasets",
    "builtin.distillation",
    "builtin.objectives",
    "builtin.partitioners",
    "builtin.pruning",
    "builtin.quantization",
    "builtin.samplers",
    "builtin.strategies",
}


def plugin_module(name: str, *classes: type, kind: str = "architecture") -> types.ModuleType:
    """An in-memory plugin registering ``classes`` as ``kind``."""
    module = types.ModuleType(name)

    @hookimpl
    def fedsearch_register_components(register):
        for cls in classes:
            getattr(register, kind)(cls)

    module.fedsearch_register_components = fedsearch_register_components
    return module


class Tiny(Architecture):
    name = "mlp"  # clashes with the built-in family

    def build(self, input_shape, num_classes):
        return torch.nn.Linear(1, num_classes)


def test_builtins_are_discovered_through_the_entry_point_group(monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.delenv(BLOCK_ENV, raising=False)
    manager = get_plugin_manager()
    infos = {info.name: info for info in describe_plugins(manager, get_registry(manager))}
    assert set(infos) >= BUILTIN_PLUGINS
    assert infos["builtin.pruning"].distribution == "fedsearch"
    assert infos["builtin.pruning"].components == {"compressor": ["magnitude"]}


def test_registry_remembers_which_plugin_supplied_a_component(registry):
    component = registry.get("compressor", "uniform")
    assert component.plugin == "builtin.quantization"
    assert component.plugin_version is not None
    assert set(registry.names("architecture")) >= {"mlp", "cnn"}
    for kind in (
        "compressor",
        "architecture",
        "dataset",
        "partitioner",
        "strategy",
        "codec",
        "sampler",
    ):
        assert registry.names(kind), f"no built-in {kind}"


def test_allow_list_loads_only_the_named_plugins(monkeypatch):
    monkeypatch.setenv(ALLOW_ENV, "builtin.pruning, builtin.architectures")
    registry = get_registry()
    assert registry.names("compressor") == ["magnitude"]
    assert registry.names("codec") == []


def test_block_list_skips_plugins(monkeypatch):
    monkeypatch.setenv(BLOCK_ENV, "builtin.quantization")
    registry = get_registry()
    assert "uniform" not in registry.names("compressor")
    assert "magnitude" in registry.names("compressor")


def test_allow_list_naming_a_missing_plugin_is_an_error(monkeypatch):
    monkeypatch.setenv(ALLOW_ENV, "builtin.pruning,no-such-plugin")
    with pytest.raises(PluginError, match="no-such-plugin"):
        get_plugin_manager()


def test_duplicate_component_name_names_both_plugins():
    manager = get_plugin_manager(extra_plugins=[plugin_module("clashing_plugin", Tiny)])
    with pytest.raises(PluginError) as caught:
        get_registry(manager)
    message = str(caught.value)
    assert "builtin.architectures" in message
    assert "clashing_plugin" in message
    assert "'mlp'" in message


@pytest.mark.parametrize(
    ("cls", "problem"),
    [
        (int, "expected a subclass of fedsearch.Architecture"),
        (Architecture, "abstract; implement build"),
        (type("Unnamed", (Tiny,), {"name": "Bad Name"}), "lowercase"),
    ],
)
def test_invalid_registrations_are_refused_with_the_plugin_named(cls, problem):
    manager = get_plugin_manager(extra_plugins=[plugin_module("sloppy_plugin", cls)])
    with pytest.raises(PluginError, match=problem) as caught:
        get_registry(manager)
    assert "sloppy_plugin" in str(caught.value)


def test_compressor_needs_a_known_stage():
    class Stageless(Compressor):
        name = "stageless"
        stage = "shrink"

        def setup(self, context):
            pass

    manager = get_plugin_manager(extra_plugins=[plugin_module("p", Stageless, kind="compressor")])
    with pytest.raises(
        PluginError, match="set `stage` to one of factorize, prune, quantize, distill"
    ):
        get_registry(manager)


def test_per_layer_dimension_needs_an_earlier_count_field():
    class BadParams(ComponentParams):
        widths: Annotated[list[int], SearchPerLayer(SearchChoices([8]), count="depth")] = [8]
        depth: int = 1

    bad = type("PerLayer", (Tiny,), {"name": "per_layer", "Params": BadParams})
    manager = get_plugin_manager(extra_plugins=[plugin_module("layered", bad)])
    with pytest.raises(PluginError, match="count='depth'; it must be an int field declared before"):
        get_registry(manager)


def test_objective_needs_a_metric_name():
    class Nameless(Objective):
        name = "nameless"

        def measure(self, model, input_shape):
            return 0.0

    manager = get_plugin_manager(extra_plugins=[plugin_module("p", Nameless, kind="objective")])
    with pytest.raises(PluginError, match="set a class attribute `metric`"):
        get_registry(manager)


def test_a_hook_that_raises_is_reported_as_that_plugins_error():
    module = types.ModuleType("broken_plugin")

    @hookimpl
    def fedsearch_register_components(register):
        raise RuntimeError("boom")

    module.fedsearch_register_components = fedsearch_register_components
    with pytest.raises(PluginError, match=r"broken_plugin.*RuntimeError: boom"):
        get_registry(get_plugin_manager(extra_plugins=[module]))


def test_building_the_manager_twice_gives_independent_managers():
    assert get_plugin_manager() is not get_plugin_manager()
