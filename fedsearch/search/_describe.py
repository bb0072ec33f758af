"""One-line descriptions of a trial's selection, for tables, reports and progress lines."""

from __future__ import annotations

from typing import Any

_SHORT_PARAM_NAMES = {"temperature": "T", "sparsity": "s", "bits": "b"}


def describe_selection(selection: dict[str, Any]) -> str:
    """``mlp(depth=2, width=64) + magnitude(s=0.8) + uniform(b=4)``.

    Codec slots (lists of stages) read ``uplink_codec=[topk(fraction=0.01) > qsgd(levels=4)]``.
    """
    parts = []
    for slot, choice in selection.items():
        if isinstance(choice, list):
            stages = " > ".join(_describe_choice(stage) for stage in choice)
            parts.append(f"{slot}=[{stages}]")
        else:
            parts.append(_describe_choice(choice))
    return " + ".join(parts)


def _describe_choice(choice: dict[str, Any]) -> str:
    params = ", ".join(
        f"{_SHORT_PARAM_NAMES.get(key, key)}={_format(value)}"
        for key, value in choice["params"].items()
        if value is not None
    )
    return f"{choice['name']}({params})"


def _format(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


_SHORT_COMPONENT_NAMES = {"magnitude": "prune", "uniform": "", "soft_target": "KD"}
"""Built-in components whose compact label differs from their name (``""``: the params say it)."""

_SHORT_PARAMS = {
    "depth": "d{}",
    "widths": "w{}",
    "channels": "{}ch",
    "kernel_size": "k{}",
    "hidden": "h{}",
    "width_multiplier": "x{}",
    "sparsity": "{:.0%}",
    "bits": "int{}",
    "temperature": "T{:.2g}",
    "alpha": "a{:.2f}",
    "rank_fraction": "r{:.2g}",
    "fraction": "{:.2g}",
}
"""Compact forms of common param names; any other param reads ``name=value``."""


def searched_names(params: dict[str, Any]) -> set[str]:
    """Slots and ``<slot>.<component>.<param>`` dimensions a trial sampled (per-layer folded).

    Args:
        params: The trial's Optuna params (``trial.params``).
    """
    names = set()
    for key in params:
        parts = key.split(".")
        names.add(".".join(parts[:3]))
    return names


def describe_searched(selection: dict[str, Any], params: dict[str, Any]) -> str:
    """Only what the search chose, compactly: ``cnn 4-8ch k5 h32 | prune 60% | int6 | KD T2.8``.

    A component shows the params the trial sampled; a slot with one candidate
    and no sampled param is left out (``describe_fixed`` lists it once).

    Args:
        selection: The trial's ``selection`` user attribute.
        params: The trial's Optuna params.
    """
    searched = searched_names(params)
    parts = []
    for slot, choice in selection.items():
        stages = choice if isinstance(choice, list) else [choice]
        described = []
        for stage in stages:
            fields = [f for f in stage["params"] if f"{slot}.{stage['name']}.{f}" in searched]
            if slot not in searched and not fields:
                continue
            label = _SHORT_COMPONENT_NAMES.get(stage["name"], stage["name"])
            values = stage["params"]
            if any(isinstance(values[f], list) for f in fields):  # the lists show the depth
                fields = [f for f in fields if f != "depth"]
            tokens = [_short_param(f, values[f]) for f in fields]
            described.append(" ".join(token for token in [label, *tokens] if token))
        if described:
            codec = isinstance(choice, list)
            parts.append(f"{slot}={'>'.join(described)}" if codec else described[0])
    return " | ".join(parts) or "-"


def describe_fixed(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """The settings no trial searched, once: ``mlp(depth=1); magnitude(scope=global, ...)``.

    Args:
        rows: ``(selection, params)`` of each trial shown.
    """
    fixed: dict[str, dict[str, Any]] = {}
    for selection, params in rows:
        searched = searched_names(params)
        for slot, choice in selection.items():
            for stage in choice if isinstance(choice, list) else [choice]:
                key = f"{slot}.{stage['name']}"
                kept = {
                    name: value
                    for name, value in stage["params"].items()
                    if f"{key}.{name}" not in searched and value is not None
                }
                fixed.setdefault(key, kept)
                fixed[key] = {k: v for k, v in fixed[key].items() if kept.get(k, v) == v}
    return "; ".join(
        f"{_fixed_label(key)}({', '.join(f'{k}={_format(v)}' for k, v in values.items())})"
        for key, values in fixed.items()
        if values
    )


def _fixed_label(key: str) -> str:
    """``prune.magnitude`` -> ``magnitude``; codec stages keep their slot: ``uplink_codec=topk``."""
    slot, name = key.split(".", 1)
    return f"{slot}={name}" if slot.endswith("_codec") else name


def _short_param(name: str, value: Any) -> str:
    template = _SHORT_PARAMS.get(name)
    if template is None:
        return f"{name}={_format(value)}"
    prefix, _, rest = template.partition("{")
    spec, _, suffix = rest.partition("}")
    items = value if isinstance(value, list) else [value]
    return prefix + "-".join(f"{{{spec}}}".format(item) for item in items) + suffix
