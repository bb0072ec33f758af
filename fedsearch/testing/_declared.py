"""The declaration check every conformance suite starts with."""

from __future__ import annotations

from typing import Any

from fedsearch.components import ComponentParams


def assert_declares_name_and_params(cls: type, params: dict[str, Any]) -> None:
    """``cls`` has a non-empty ``name`` and a ``Params`` model whose defaults and ``params``
    validate."""
    assert isinstance(cls.name, str) and cls.name, "set a non-empty `name`"
    assert issubclass(cls.Params, ComponentParams)
    cls.Params()  # defaults must validate
    cls.Params(**params)
