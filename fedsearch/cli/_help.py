"""Descriptions and examples of the ``fedsearch`` subcommands (``fedsearch COMMAND --help``)."""

from __future__ import annotations

STORAGE_HELP = (
    "storage URL of the study, e.g. sqlite:///runs/fedsearch.db or "
    "postgresql://user@host/db (the URL `fedsearch run` printed)"
)
STUDY_NAME_HELP = "study name (default: the only study in the storage)"
FULL_HELP = "show every setting of every trial (default: only the searched choices, one line each)"

DESCRIPTIONS = {
    "run": (
        "Create the study a study file describes, or join it when it exists (same name, same "
        "configuration), and run trials until it holds the file's n_trials finished trials. "
        "Any number of processes or machines may run the same command on one storage. Prints "
        "each trial as it finishes and the feasible Pareto front at the end."
    ),
    "plugins": "List the installed fedsearch plugins, their distributions and their components.",
    "validate": (
        "Check a study file and its search space against the installed plugins, and print the "
        "configuration resolved (defaults filled in) with every search dimension. Stores nothing."
    ),
    "pareto": (
        "Print the feasible Pareto front of a stored study: one line per trial with its "
        "objectives, test accuracy and the choices the search made; settings that no trial "
        "searched are printed once above the table. A trial number followed by +N stands for "
        "N more trials with identical objectives. Sizes are SI (1 kB = 1000 bytes)."
    ),
    "status": (
        "Where a stored study stands: trials by state and by worker, the latest failures, "
        "and the best trade-offs so far."
    ),
    "report": (
        "Write a self-contained HTML report of a stored study into a folder: the Pareto front "
        "in every pair of objectives (the teacher marked), learning curves, a table with sizes, "
        "ratios to the teacher, bits and sparsity, and the front's artifacts beside it."
    ),
    "export": (
        "Write a trial's compressed model, or every trial of the feasible front, as its "
        "fedsearch artifact (.fsz), ONNX, TorchScript or ExecuTorch, then load each file back "
        "in its runtime and re-score it on the study's validation and test splits."
    ),
}

_DB = "sqlite:///runs/fedsearch.db"
EXAMPLES = {
    "run": [
        "fedsearch run studies/quickstart.toml",
        "fedsearch run studies/quickstart.toml --n-trials 5 --threads 2",
        "fedsearch run studies/quickstart.toml --storage postgresql://me@db/fedsearch",
    ],
    "plugins": ["fedsearch plugins", "fedsearch plugins --json"],
    "validate": ["fedsearch validate studies/quickstart.toml"],
    "pareto": [
        f"fedsearch pareto --storage {_DB}",
        f"fedsearch pareto --storage {_DB} --study-name quickstart --full",
        f"fedsearch pareto --storage {_DB} --json",
    ],
    "status": [f"fedsearch status --storage {_DB}", f"fedsearch status --storage {_DB} --json"],
    "report": [f"fedsearch report --storage {_DB} -o runs/report"],
    "export": [
        f"fedsearch export --storage {_DB} --trial 3 -o model.fsz",
        f"fedsearch export --storage {_DB} --trial 3 --format onnx -o model.onnx",
        f"fedsearch export --storage {_DB} --pareto --format torchscript -o runs/front",
    ],
}


def epilog(command: str) -> str:
    """The ``examples:`` block shown at the end of ``fedsearch COMMAND --help``."""
    return "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[command])
