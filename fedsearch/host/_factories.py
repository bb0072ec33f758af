"""Loading the user's model factories (``module:function``) and binding them to a registry.

Only a caller that decided to trust a file imports it: the study's resolution
(the study file names the factory) or Python code that passes the function
itself. An artifact only names a reference; loading it needs a registry bound
here.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from fedsearch._errors import ConfigError
from fedsearch.components import FACTORY_ARCHITECTURE, FactoryArchitecture, ModelFactory
from fedsearch.host._registry import ComponentRegistry


def with_factories(
    registry: ComponentRegistry,
    factories: Mapping[str, ModelFactory],
    *,
    source: str | None = None,
    fields: Mapping[str, str] | None = None,
) -> ComponentRegistry:
    """A copy of ``registry`` whose ``factory`` architecture can call ``factories``.

    Args:
        registry: The registry to copy (unchanged).
        factories: Functions by reference (``"my_models:build"``), each
            ``build(input_shape, num_classes, **kwargs) -> nn.Module``.
        source: The file that named them (for error messages).
        fields: The field that named each reference (for error messages).

    Example:
        ``load_model(data, with_factories(get_registry(), {"my_models:build": build}))``
    """
    unbound = registry.get("architecture", FACTORY_ARCHITECTURE).cls
    if not issubclass(unbound, FactoryArchitecture):
        raise ConfigError(
            f"the architecture {FACTORY_ARCHITECTURE!r} is not fedsearch's FactoryArchitecture; "
            "remove the plugin that replaces it"
        )
    bound = type(
        unbound.__name__,
        (unbound,),
        {
            "__module__": unbound.__module__,
            "__doc__": unbound.__doc__,
            "factories": MappingProxyType({**unbound.factories, **factories}),
            "source": source,
            "fields": MappingProxyType({**unbound.fields, **(fields or {})}),
        },
    )
    return registry.replaced(bound)


def load_factory(
    reference: str,
    folder: Path,
    *,
    kwargs: Mapping[str, Any] | None = None,
    source: str | None = None,
    field: str | None = None,
) -> ModelFactory:
    """Import the function ``module:function`` names, from ``folder`` or the import path.

    ``module`` is first looked up as a file in ``folder`` (``pkg.models`` is
    ``folder/pkg/models.py``), then imported normally.

    Args:
        reference: ``module:function``.
        folder: The folder of the study file.
        kwargs: Keyword arguments the function will get; checked against its signature.
        source: The study file (for errors).
        field: The field that names the reference (for errors).

    Raises:
        ConfigError: The module is missing or fails to import, the function is
            missing or not callable, or it cannot take ``kwargs``.
    """
    module_name, _, function_name = reference.partition(":")
    module = _import(module_name, folder, source, field)
    function = getattr(module, function_name, None)
    where = getattr(module, "__file__", None) or module_name
    if function is None or not callable(function):
        problem = "has no function" if function is None else "has a non-callable"
        raise ConfigError(
            f"module {module_name!r} ({where}) {problem} {function_name!r}; define "
            f"{function_name}(input_shape, num_classes, **kwargs) returning an nn.Module",
            source=source,
            field=field,
        )
    _check_signature(function, reference, dict(kwargs or {}), source, field)
    return function


def _import(module_name: str, folder: Path, source: str | None, field: str | None) -> ModuleType:
    path = folder.joinpath(*module_name.split(".")).with_suffix(".py")
    what = path if path.is_file() else module_name
    try:
        if path.is_file():
            return _import_file(path, module_name)
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name and not module_name.startswith(f"{error.name}."):
            raise _import_error(what, error, source, field) from None
        raise ConfigError(
            f"no module {module_name!r}: {path} does not exist and it is not importable; put "
            "the file beside the study file or fix the reference (module:function)",
            source=source,
            field=field,
        ) from None
    except Exception as error:  # the user's code runs on import
        raise _import_error(what, error, source, field) from None


def _import_error(
    what: object, error: Exception, source: str | None, field: str | None
) -> ConfigError:
    return ConfigError(
        f"importing {what} failed: {type(error).__name__}: {error}; fix the module",
        source=source,
        field=field,
    )


def _import_file(path: Path, module_name: str) -> ModuleType:
    """Import ``path`` under a private name unique to the file (``sys.modules`` keeps it)."""
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    private = f"_fedsearch_factory_{module_name.replace('.', '_')}_{digest}"
    spec = importlib.util.spec_from_file_location(private, resolved)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[private] = module  # classes defined in it stay picklable and inspectable
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(private, None)
        raise
    return module


def _check_signature(
    function: ModelFactory,
    reference: str,
    kwargs: dict[str, Any],
    source: str | None,
    field: str | None,
) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without a signature: checked when called
        return
    try:
        signature.bind((1,), 2, **kwargs)
    except TypeError as error:
        raise ConfigError(
            f"{reference} cannot be called as {reference.partition(':')[2]}(input_shape, "
            f"num_classes, **{kwargs}): {error}; fix its signature or the kwargs",
            source=source,
            field=field,
        ) from None
