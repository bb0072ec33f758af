"""Module overrides: the shapes compression gave a model, as plain JSON.

Structured pruning resizes layers and low-rank factorisation replaces a layer
by a small sequence of layers. The artifact records every such submodule by
its path so the loader can rebuild exactly the smaller model: it builds the
architecture, then swaps the recorded modules in. Only a closed set of module
types can be described (no pickles, nothing executable).
"""

from __future__ import annotations

from typing import Any

from torch import nn

_CONV_FIELDS = ("kernel_size", "stride", "padding", "dilation")


def describe_module(module: nn.Module) -> dict[str, Any]:
    """The JSON description of a supported module.

    Supported: ``Linear``, ``Conv2d`` (zero padding), ``BatchNorm1d``/``2d``,
    activation and shape modules without parameters (``ReLU``, ``Flatten``,
    ``MaxPool2d``, ``Identity``), and ``Sequential`` of these.

    Raises:
        ValueError: The module type cannot be described.
    """
    if isinstance(module, nn.Sequential):
        return {"type": "Sequential", "children": [describe_module(child) for child in module]}
    if isinstance(module, nn.Linear):
        return {
            "type": "Linear",
            "in": module.in_features,
            "out": module.out_features,
            "bias": module.bias is not None,
        }
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise ValueError("only Conv2d with numeric zero padding can be described")
        description = {
            "type": "Conv2d",
            "in": module.in_channels,
            "out": module.out_channels,
            "groups": module.groups,
            "bias": module.bias is not None,
        }
        return description | {name: list(getattr(module, name)) for name in _CONV_FIELDS}
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        return {"type": type(module).__name__, "features": module.num_features}
    if isinstance(module, nn.ReLU | nn.Flatten | nn.Identity):
        return {"type": type(module).__name__}
    raise ValueError(f"cannot describe a {type(module).__name__} module in an artifact")


def build_module(description: dict[str, Any]) -> nn.Module:
    """The module a :func:`describe_module` description stands for.

    Raises:
        ValueError: The description is malformed or of an unsupported type.
    """
    kind = description.get("type") if isinstance(description, dict) else None
    if kind == "Sequential":
        return nn.Sequential(*(build_module(child) for child in description["children"]))
    if kind == "Linear":
        return nn.Linear(description["in"], description["out"], bias=description["bias"])
    if kind == "Conv2d":
        fields = {name: tuple(description[name]) for name in _CONV_FIELDS}
        return nn.Conv2d(
            description["in"],
            description["out"],
            groups=description["groups"],
            bias=description["bias"],
            **fields,
        )
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return getattr(nn, kind)(description["features"])
    if kind in ("ReLU", "Flatten", "Identity"):
        return getattr(nn, kind)()
    raise ValueError(f"unsupported module description {description!r}")


def module_overrides(model: nn.Module, reference: nn.Module) -> dict[str, Any]:
    """Descriptions of the submodules of ``model`` that differ from ``reference``'s.

    Walks the module tree from the root; a submodule whose description differs
    from the one at the same path of ``reference`` (or that ``reference`` lacks)
    is recorded whole and not descended into.

    Raises:
        ValueError: A differing submodule cannot be described.
    """
    overrides: dict[str, Any] = {}

    def visit(path: str, module: nn.Module, original: nn.Module | None) -> None:
        if original is not None and _same(module, original):
            return
        if (
            original is not None
            and type(module) is type(original)
            and not isinstance(module, nn.Linear | nn.Conv2d)
        ):
            originals = dict(original.named_children())
            for name, child in module.named_children():
                visit(f"{path}.{name}" if path else name, child, originals.get(name))
            return
        overrides[path] = describe_module(module)

    visit("", model, reference)
    return overrides


def _same(module: nn.Module, original: nn.Module) -> bool:
    try:
        return describe_module(module) == describe_module(original)
    except ValueError:
        return type(module) is type(original) and not any(True for _ in module.children())


def apply_overrides(model: nn.Module, overrides: dict[str, Any]) -> nn.Module:
    """Swap the described modules into ``model`` (in place) and return it.

    Raises:
        ValueError: A path or description is invalid.
    """
    for path, description in overrides.items():
        replacement = build_module(description)
        if path == "":
            return replacement
        try:
            model.get_submodule(path)
        except AttributeError as exc:
            raise ValueError(f"the model has no submodule {path!r}") from exc
        model.set_submodule(path, replacement)
    return model
