"""Argument parsing and the error policy of the ``fedsearch`` command."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import textwrap
import threading
from collections.abc import Sequence
from typing import NoReturn

import optuna
from rich.console import Console

from fedsearch import __version__
from fedsearch._errors import FedsearchError
from fedsearch.cli import _commands
from fedsearch.cli._help import DESCRIPTIONS, FULL_HELP, STORAGE_HELP, STUDY_NAME_HELP, epilog
from fedsearch.study import EXPORT_FORMATS

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _number(text, float)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def _trial_number(text: str) -> int:
    return _number(text, int)


class _OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line naming the problem and where help is, exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``fedsearch run: error: <message>; see fedsearch run --help`` and exit 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _command(
    commands: argparse._SubParsersAction, name: str, help_text: str, **kwargs: object
) -> argparse.ArgumentParser:
    """A subcommand with its one-line help, its description and its examples."""
    return commands.add_parser(
        name,
        help=help_text,
        description=textwrap.fill(DESCRIPTIONS[name], width=79),
        epilog=epilog(name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = _OneLineParser(
        prog="fedsearch",
        description="AutoML compression search for federated learning: an Optuna study over "
        "student architectures, pruning, quantization and distillation, each trial scored in "
        "a federated simulation on accuracy, model bytes and communication bytes.",
        epilog="Run `fedsearch COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"fedsearch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stored = _OneLineParser(add_help=False)  # commands that read a stored study
    stored.add_argument("--storage", required=True, metavar="URL", help=STORAGE_HELP)
    stored.add_argument("--study-name", metavar="NAME", help=STUDY_NAME_HELP)
    as_json = _OneLineParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON instead of tables")
    full = _OneLineParser(add_help=False)
    full.add_argument("--full", action="store_true", help=FULL_HELP)

    run = _command(commands, "run", "run (or join) a study from a study file", parents=[full])
    run.add_argument("study_file", metavar="STUDY.toml", help="the study file")
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
    run.add_argument(
        "--warm-start",
        metavar="STUDY",
        help="start from this earlier study: its feasible front first, its trials as history "
        "for TPE, GP and the RL controller (overrides the file's search.warm_start)",
    )
    run.add_argument(
        "--warm-start-storage",
        metavar="URL",
        help="storage of the --warm-start study (default: this study's storage)",
    )
    run.set_defaults(handler=_commands.run)

    plugins = _command(
        commands, "plugins", "list installed plugins and their components", parents=[as_json]
    )
    plugins.set_defaults(handler=_commands.plugins)

    validate = _command(
        commands, "validate", "check a study file and print it resolved", parents=[as_json]
    )
    validate.add_argument("study_file", metavar="STUDY.toml", help="the study file to check")
    validate.set_defaults(handler=_commands.validate)

    pareto = _command(
        commands,
        "pareto",
        "print the Pareto front of a stored study",
        parents=[stored, as_json, full],
    )
    pareto.set_defaults(handler=_commands.pareto)

    status = _command(
        commands,
        "status",
        "trials by state and by worker, failures, best trade-offs so far",
        parents=[stored, as_json, full],
    )
    status.set_defaults(handler=_commands.status)

    report = _command(
        commands,
        "report",
        "write a self-contained HTML report with PNG plots of a stored study",
        parents=[stored],
    )
    report.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="output folder (created)"
    )
    report.add_argument(
        "--artifact-dir",
        metavar="DIR",
        help="the study's artifact folder (default: the one recorded in the study)",
    )
    report.set_defaults(handler=_commands.report)

    export = _command(
        commands,
        "export",
        "write a trial's model (or the whole front) as its artifact, ONNX, TorchScript "
        "or ExecuTorch, and re-score each file in its runtime",
        parents=[stored],
    )
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--trial", type=_trial_number, metavar="N", help="trial number (see fedsearch pareto)"
    )
    which.add_argument(
        "--pareto",
        action="store_true",
        help="every trial of the feasible front into the folder -o, with exports.json",
    )
    export.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="artifact",
        help="file format (default: artifact, the .fsz fedsearch stored)",
    )
    export.add_argument(
        "-o", "--output", required=True, metavar="PATH", help="file (--trial) or folder (--pareto)"
    )
    export.add_argument(
        "--tier",
        metavar="NAME",
        help="with --trial: that device tier's own artifact (studies with [tiers])",
    )
    export.add_argument(
        "--study-file",
        metavar="STUDY.toml",
        help="the study file, to load the model factories it names (factory architectures)",
    )
    export.set_defaults(handler=_commands.export)
    return parser


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM stops like Ctrl-C: the running trial is marked FAIL, nothing stored is lost."""
    raise KeyboardInterrupt("interrupted (SIGTERM)")


def _quiet_libraries() -> None:
    """Optuna and alembic log only what the user must see.

    Optuna logs every failed trial as a warning with its traceback (Ctrl-C
    included); ``fedsearch run`` prints each trial's outcome and reason itself
    and stores the traceback in the trial's user attributes, so those
    warnings are dropped.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna.study._optimize").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _one_line(error: BaseException) -> str:
    """The error's message on one line (line breaks and runs of spaces collapsed)."""
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fedsearch`` console script."""
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    console = Console(stderr=False)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.handler(args, console)
    except FedsearchError as error:
        print(f"fedsearch: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as interrupt:
        reason = _one_line(interrupt) if str(interrupt) else "interrupted (Ctrl-C)"
        print(
            f"fedsearch: {reason}; any running trial is marked FAIL, finished trials are kept "
            "(run again to continue)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
