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
