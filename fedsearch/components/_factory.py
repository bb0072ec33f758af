"""The ``factory`` architecture: your own ``nn.Module`` from a Python function, no plugin.

``architecture = { name = "factory", params = { factory = "my_models:build",
kwargs = { width = 16 } } }`` builds ``my_models.build(input_shape, num_classes,
width=16)``. The function is never imported by this class: whoever holds the
trust to run it (the study file's resolution, or a Python caller) binds the
loaded functions to the registry with ``fedsearch.with_factories``. An
unbound ``factory`` (a bare artifact load) raises an ``ArtifactError`` that
says how to load the model, so an artifact can never make fedsearch import
code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import field_validator
from torch import nn

from fedsearch._errors import ArtifactError, ConfigError
from fedsearch.components._architecture import Architecture
from fedsearch.components._params import ComponentParams

FACTORY_ARCHITECTURE = "factory"
"""Name of the architecture that builds a model with the user's own function."""

ModelFactory = Callable[..., nn.Module]
"""``build(input_shape, num_classes, **kwargs) -> nn.Module``."""

_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


class FactoryParams(ComponentParams):
    """Which function builds the model, and the keyword arguments it gets."""

    factory: str = ""
    """``module:function``; the module is a Python file beside the study file
    (``my_models`` is ``my_models.py``) or an importable module."""
    kwargs: dict[str, Any] = {}
    """Keyword arguments passed to the function after ``input_shape, num_classes``."""

    @field_validator("factory")
    @classmethod
    def _reference(cls, value: str) -> str:
        if value and not _REFERENCE.match(value):
            raise ValueError("give the factory as 'module:function' (like 'my_models:build')")
        return value


def not_loaded_message(reference: str, loaded: Mapping[str, Any]) -> str:
    """Why an unbound factory cannot build, and how to load its model."""
    known = f" (loaded: {', '.join(sorted(loaded))})" if loaded else ""
    return (
        f"the model is built by the factory {reference!r}, which is not loaded{known}: "
        "fedsearch never imports code an artifact names; load it with the study file that "
        "names the factory (`fedsearch export --study-file STUDY.toml ...`), or in Python "
        "with load_model(data, with_factories(get_registry(), {"
        f"{reference!r}: function}}))"
    )


class FactoryArchitecture(Architecture):
    """A model built by ``params.factory`` (``module:function``) with ``params.kwargs``.

    The function is looked up in ``factories``, which only
    ``fedsearch.with_factories`` fills (on a subclass bound to one registry).
    """

    name = FACTORY_ARCHITECTURE
    description = "your own nn.Module from build(input_shape, num_classes, **kwargs), no plugin"
    Params = FactoryParams
    factories: ClassVar[Mapping[str, ModelFactory]] = MappingProxyType({})
    """Loaded functions by reference; empty on the registered (unbound) class."""
    source: ClassVar[str | None] = None
    """The file that named the factories, for error messages."""
    fields: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """The field that named each reference, for error messages."""

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """Call the bound function; its errors become one-line ``ConfigError``s.

        Raises:
            ConfigError: No factory given, the function raised, or it returned
                something other than an ``nn.Module``.
            ArtifactError: The factory is not bound (see the module docstring).
        """
        params: FactoryParams = self.params
        reference = params.factory
        field = self.fields.get(reference, "architecture.params.factory")
        if not reference:
            raise ConfigError(
                "the factory architecture needs params.factory = 'module:function'",
                source=self.source,
                field=field,
            )
        function = self.factories.get(reference)
        if function is None:
            raise ArtifactError(not_loaded_message(reference, self.factories))
        try:
            model = function(tuple(input_shape), num_classes, **params.kwargs)
        except Exception as error:  # the user's code: any failure is a config problem
            raise ConfigError(
                f"{reference}{tuple(input_shape), num_classes} with kwargs {params.kwargs} "
                f"raised {type(error).__name__}: {error}; fix the function or its kwargs",
                source=self.source,
                field=field,
            ) from error
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"{reference} returned a {type(model).__name__}, not a torch.nn.Module; "
                "return the model",
                source=self.source,
                field=field,
            )
        return model
