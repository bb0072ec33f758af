"""The ``fedsearch`` command line."""

from __future__ import annotations

import sys

from fedsearch.cli._main import build_parser
from fedsearch.cli._main import main as _main


def main() -> None:
    """Console-script entry point: exit with the command's status."""
    sys.exit(_main())


__all__ = ["build_parser", "main"]
