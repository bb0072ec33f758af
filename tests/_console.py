"""The real ``fedsearch`` console script, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FEDSEARCH = str(Path(sys.executable).with_name("fedsearch"))
"""The console script installed beside this interpreter."""


def fedsearch(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``fedsearch ARGS`` in ``cwd``; ``env`` adds to (and overrides) this environment."""
    return subprocess.run(
        [FEDSEARCH, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
