"""User attributes every trial records about where it ran and why it failed."""

from __future__ import annotations

import traceback

WORKER_ATTR = "worker"
"""User attribute naming the worker (``host:pid``) that ran the trial."""
TRACEBACK_LINES = 12


def error_attributes(error: BaseException) -> dict[str, str]:
    """Readable user attributes that say why a trial failed."""
    lines = traceback.format_exception(error)
    return {
        "error_type": type(error).__name__,
        "error": str(error) or type(error).__name__,
        "traceback": "".join(lines[-TRACEBACK_LINES:])[-4000:],
    }
