"""Byte counts as people read them, the same in the terminal, the report and the dashboard.

Sizes use SI units (1 kB = 1000 bytes, 1 MB = 1000 kB), as disk and network
sizes and the compression papers fedsearch compares with (Deep Compression's
``1070 KB -> 27 KB``) do.
"""

from __future__ import annotations

BYTE_UNITS = ("B", "kB", "MB", "GB", "TB")
"""Units of ``format_bytes``, each 1000 times the previous one."""


def format_bytes(count: float) -> str:
    """``764`` -> ``764 B``, ``1536`` -> ``1.54 kB``, ``783000`` -> ``783 kB`` (SI, 3 digits)."""
    value = float(count)
    for unit in BYTE_UNITS:
        if abs(value) < 999.5 or unit == BYTE_UNITS[-1]:
            if unit == "B":
                return f"{value:.0f} B"
            decimals = 2 if abs(value) < 9.995 else 1 if abs(value) < 99.95 else 0
            return f"{value:.{decimals}f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def format_ratio(value: float, reference: float | None) -> str:
    """``value / reference`` as ``0.12x``, ``3.4x`` or ``25x``; ``-`` without a reference."""
    if not reference:
        return "-"
    ratio = value / reference
    return f"{ratio:.2g}x" if ratio < 10 else f"{ratio:.0f}x"
