"""Argument parsing and the error policy of the ``fedsearch`` command."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

import optuna
from rich.console import Console

from fedsearch._errors import FedsearchError
from fedsearch.cli import _commands
from fedsearch.study import EXPORT_FORMATS

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="fedsearch",
        description="AutoML compression search for federated learning.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stored = argparse.ArgumentParser(add_help=False)  # commands that read a stored study
    stored.add_argument("--storage", required=True, metavar="URL")
    stored.add_argument("--study-name", required=True, metavar="NAME")

    run = commands.add_parser("run", help="run (or join) a study from a study file")
    run.add_argument("study_file", metavar="STUDY.toml")
    run.add_argument(
        "--storage", metavar="URL", help="storage URL (default: the file's, else SQLite in runs/)"
    )
    run.add_argument("--study-name", metavar="NAME", help="study name (default: the file's name)")
    run.add_argument(
        "--n-trials",
        type=_positive_int,
        metavar="N",
        help="trials this process runs (default: until the study holds the file's n_trials)",
    )
    run.add_argument(
        "--timeout", type=_positive_float, metavar="S", help="stop starting trials after S seconds"
    )
    run.add_argument(
        "--threads",
        type=_non_negative_int,
        metavar="N",
        help="PyTorch threads of this worker (default: the file's workers.threads, 1; "
        "0 = torch's default)",
    )
    run.set_defaults(handler=_commands.run)

    plugins = commands.add_parser("plugins", help="list installed plugins and their components")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(handler=_commands.plugins)

    validate = commands.add_parser("validate", help="check a study file and print it resolved")
    validate.add_argument("study_file", metavar="STUDY.toml")
    validate.add_argument("--json", action="store_true", help="print JSON")
    validate.set_defaults(handler=_commands.validate)

    pareto = commands.add_parser(
        "pareto", help="print the Pareto front of a stored study", parents=[stored]
    )
    pareto.add_argument("--json", action="store_true", help="print JSON")
    pareto.set_defaults(handler=_commands.pareto)

    status = commands.add_parser(
        "status",
        help="trials by state and by worker, failures, best trade-offs so far",
        parents=[stored],
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_commands.status)

    report = commands.add_parser(
        "report",
        help="write a self-contained HTML report with PNG plots of a stored study",
        parents=[stored],
    )
    report.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    report.add_argument(
        "--artifact-dir",
        metavar="DIR",
        help="the study's artifact folder (default: the one recorded in the study)",
    )
    report.set_defaults(handler=_commands.report)

    export = commands.add_parser(
        "export",
        help="write a trial's model as its artifact, ONNX or TorchScript",
        parents=[stored],
    )
    export.add_argument("--trial", required=True, type=int, metavar="N", help="trial number")
    export.add_argument(
        "--format", choices=EXPORT_FORMATS, default="artifact", help="default: artifact"
    )
    export.add_argument("-o", "--output", required=True, metavar="PATH")
    export.set_defaults(handler=_commands.export)
    return parser


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM stops like Ctrl-C: the running trial is marked FAIL, nothing stored is lost."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fedsearch`` console script."""
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    console = Console(stderr=False)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.handler(args, console)
    except FedsearchError as error:
        print(f"fedsearch: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fedsearch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
