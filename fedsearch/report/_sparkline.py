"""A learning curve small enough for a table cell: an inline SVG polyline."""

from __future__ import annotations

import html


def sparkline(values: list[float], *, width: int = 120, height: int = 28) -> str:
    """Inline SVG of ``values`` (validation accuracy per round) on a 0..1 scale.

    The title (shown on hover) lists first, best and last values.
    """
    if not values:
        return "-"
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{index * step:.1f},{height - 2 - value * (height - 4):.1f}"
        for index, value in enumerate(values)
    )
    title = (
        f"validation accuracy over {len(values)} rounds: first {values[0]:.4f}, "
        f"best {max(values):.4f}, last {values[-1]:.4f}"
    )
    return (
        f'<svg class="curve" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img"><title>{html.escape(title)}</title>'
        f'<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{points}"/></svg>'
    )
