"""A table of bad inputs: each gives exit 2, one line on stderr, no traceback, storage unchanged.

Every case runs the CLI in-process (``main(argv)``) in a fresh folder beside a
stored study (one finished trial); a handful also run through the real
console script. "Storage unchanged" means: the stored database dumps to the
same SQL, and no file or folder appeared (no empty database, no ``runs/``).
"""

from __future__ import annotations

import gzip
import hashlib
import sqlite3
import struct
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fedsearch.cli._main import main
from tests.conftest import TINY_SPACE, TINY_STUDY, free_port

FEDSEARCH = str(Path(sys.executable).with_name("fedsearch"))
UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:{port}/test"


@dataclass(frozen=True)
class Case:
    """One bad input: the command line, the fragments its error line must hold, the files."""

    argv: tuple[str, ...]
    expected: tuple[str, ...]
    study: str = TINY_STUDY
    space: str = TINY_SPACE


def study_case(old: str, new: str, *expected: str, command: str = "run") -> Case:
    """The tiny study with ``old`` replaced by ``new`` (placeholders: {tmp})."""
    assert old in TINY_STUDY, old
    return Case((command, "{study}"), expected, study=TINY_STUDY.replace(old, new, 1))


def federation(line: str, *expected: str) -> Case:
    """A line added to the study's [federation] table."""
    return study_case("learning_rate = 0.3", f"learning_rate = 0.3\n{line}", *expected)


def workers(lines: str, *expected: str) -> Case:
    """A [workers] table added to the study."""
    return Case(("run", "{study}"), expected, study=f"{TINY_STUDY}\n[workers]\n{lines}\n")


def space_case(extra: str, *expected: str) -> Case:
    """A line added to the search space's [dimensions] table."""
    return Case(("run", "{study}"), expected, space=TINY_SPACE + extra + "\n")


def cli_case(*argv: str, expected: tuple[str, ...]) -> Case:
    return Case(argv, expected)


def mnist(root: str, *extra: str) -> str:
    params = ", ".join([f'root = "{root}"', *extra])
    return f'name = "mnist"\nparams = {{{{ {params} }}}}\nval_fraction = 0.2'


STORED = ("--storage", "{db}", "--study-name", "tiny")
MISSING_DB = "sqlite:///{tmp}/missing.db"

CASES: dict[str, Case] = {
    # study files: numbers out of range or not finite
    "negative seed": study_case("seed = 0", "seed = -1", "seed", "greater than or equal to 0"),
    "20-digit seed": study_case(
        "seed = 0", "seed = 12345678901234567890", "seed", "less than or equal to 4294967295"
    ),
    "float seed": study_case("seed = 0", "seed = 1.5", "seed", "valid integer"),
    "val_fraction 0": study_case(
        "val_fraction = 0.2", "val_fraction = 0.0", "dataset.val_fraction", "greater than 0"
    ),
    "val_fraction 1": study_case(
        "val_fraction = 0.2", "val_fraction = 1.0", "dataset.val_fraction", "less than 1"
    ),
    "val_fraction nan": study_case(
        "val_fraction = 0.2", "val_fraction = nan", "dataset.val_fraction", "finite number"
    ),
    "val_fraction leaves no training data": study_case(
        "val_fraction = 0.2",
        "val_fraction = 0.999",
        "study.toml: dataset.val_fraction",
        "cannot carve a validation split",
    ),
    "val_fraction leaves no validation data": study_case(
        "val_fraction = 0.2",
        "val_fraction = 0.001",
        "study.toml: dataset.val_fraction",
        "cannot carve a validation split",
    ),
    "num_clients 0": study_case(
        "num_clients = 4", "num_clients = 0", "federation.num_clients", "greater than or equal"
    ),
    "more clients than examples": study_case(
        "num_clients = 4",
        "num_clients = 100000",
        "study.toml: federation.num_clients",
        "for 100000 clients",
    ),
    "rounds 0": study_case("rounds = 3\nfraction", "rounds = 0\nfraction", "federation.rounds"),
    "fraction 0": study_case("fraction = 0.5", "fraction = 0.0", "federation.fraction"),
    "fraction 1.5": study_case("fraction = 0.5", "fraction = 1.5", "federation.fraction"),
    "fraction inf": study_case(
        "fraction = 0.5", "fraction = inf", "federation.fraction", "finite number"
    ),
    "negative learning rate": study_case(
        "learning_rate = 0.3", "learning_rate = -0.1", "federation.learning_rate"
    ),
    "learning rate nan": study_case(
        "learning_rate = 0.3", "learning_rate = nan", "federation.learning_rate", "finite"
    ),
    "learning rate inf": study_case(
        "learning_rate = 0.3", "learning_rate = inf", "federation.learning_rate", "finite"
    ),
    "batch_size 0": study_case("batch_size = 32", "batch_size = 0", "federation.batch_size"),
    "local_epochs 0": study_case("local_epochs = 1", "local_epochs = 0", "federation.local_epochs"),
    "eval_every 0": federation("eval_every = 0", "federation.eval_every"),
    "unknown execution": federation('execution = "gpu"', "federation.execution", "'gpu'"),
    "unknown downlink": federation('downlink = "both"', "federation.downlink", "'both'"),
    "early abort past the last round": federation(
        "early_abort = {{ after_round = 5, min_accuracy = 0.2 }}",
        "federation",
        "after_round (5) is past the last round (3)",
    ),
    "early abort round 0": federation(
        "early_abort = {{ after_round = 0, min_accuracy = 0.2 }}",
        "federation.early_abort.after_round",
    ),
    "early abort accuracy 1.5": federation(
        "early_abort = {{ after_round = 1, min_accuracy = 1.5 }}",
        "federation.early_abort.min_accuracy",
    ),
    "early abort accuracy nan": federation(
        "early_abort = {{ after_round = 1, min_accuracy = nan }}",
        "federation.early_abort.min_accuracy",
        "finite",
    ),
    "dirichlet alpha inf": federation(
        'partition = {{ name = "dirichlet", params = {{ alpha = inf }} }}',
        "federation.partition",
        "finite number",
    ),
    "dirichlet alpha 0": federation(
        'partition = {{ name = "dirichlet", params = {{ alpha = 0.0 }} }}',
        "federation.partition",
        "greater than 0",
    ),
    "dirichlet alpha negative": federation(
        'partition = {{ name = "dirichlet", params = {{ alpha = -1.0 }} }}',
        "federation.partition",
    ),
    "unknown partitioner": federation(
        'partition = {{ name = "dirichlett" }}', "unknown partitioner", "did you mean 'dirichlet'"
    ),
    "unknown strategy": federation(
        'strategy = {{ name = "fedavgg" }}', "unknown strategy", "did you mean 'fedavg'"
    ),
    "unknown sampler": study_case(
        'sampler = {{ name = "random" }}',
        'sampler = {{ name = "randon" }}',
        "unknown sampler",
        "did you mean 'random'",
    ),
    "teacher rounds 0": study_case("rounds = 3\n\n[search]", "rounds = 0\n\n[search]", "teacher"),
    "teacher learning rate inf": study_case(
        "rounds = 3\n\n[search]", "rounds = 3\nlearning_rate = inf\n\n[search]", "finite"
    ),
    "n_trials 0": study_case("n_trials = 3", "n_trials = 0", "search.n_trials"),
    "timeout nan in the file": study_case(
        "n_trials = 3", "n_trials = 3\ntimeout = nan", "search.timeout", "finite"
    ),
    "timeout inf in the file": study_case(
        "n_trials = 3", "n_trials = 3\ntimeout = inf", "search.timeout", "finite"
    ),
    "negative timeout in the file": study_case(
        "n_trials = 3", "n_trials = 3\ntimeout = -1.0", "search.timeout"
    ),
    "constraint accuracy 2": study_case(
        "n_trials = 3",
        "n_trials = 3\nconstraints = {{ min_accuracy = 2.0 }}",
        "search.constraints.min_accuracy",
    ),
    "constraint bytes 0": study_case(
        "n_trials = 3",
        "n_trials = 3\nconstraints = {{ max_model_bytes = 0 }}",
        "search.constraints.max_model_bytes",
    ),
    "bad study name": study_case('name = "tiny"', 'name = "bad name!"', "name"),
    "unknown dataset": study_case('name = "digits"', 'name = "digitz"', "unknown dataset"),
    "dataset test_fraction 1.5": study_case(
        'name = "digits"',
        'name = "digits"\nparams = {{ test_fraction = 1.5 }}',
        "dataset",
        "less than 1",
    ),
    "heartbeats closer than the grace period": workers(
        "heartbeat_interval = 10\ngrace_period = 5", "workers", "grace_period (5)"
    ),
    "negative threads in the file": workers("threads = -1", "workers.threads"),
    "search space file missing": study_case(
        'space = "space.toml"', 'space = "nope.toml"', "nope.toml", "file not found"
    ),
    # data folders
    "dataset folder missing": study_case(
        'name = "digits"\nval_fraction = 0.2',
        mnist("{tmp}/no-such-folder"),
        "study.toml: dataset.params.root",
        "files not found",
    ),
    "dataset files corrupt": study_case(
        'name = "digits"\nval_fraction = 0.2',
        mnist("{tmp}/garbage-mnist", "verify = false"),
        "study.toml: dataset.params.root",
        "not a readable gzip file",
    ),
    "dataset checksums wrong": study_case(
        'name = "digits"\nval_fraction = 0.2',
        mnist("{tmp}/garbage-mnist"),
        "study.toml: dataset.params.verify",
        "verify = false",
    ),
    "dataset too small for the clients": Case(
        ("run", "{study}"),
        ("study.toml: dataset.val_fraction", "leaves 8 training examples for 10 clients"),
        study=TINY_STUDY.replace(
            'name = "digits"\nval_fraction = 0.2',
            mnist("{tmp}/small-mnist", "verify = false").replace("0.2", "0.5"),
        ).replace("num_clients = 4", "num_clients = 10"),
    ),
    # search spaces
    "step larger than its range": space_case(
        '"prune.magnitude.sparsity" = { low = 0.1, high = 0.2, step = 0.5 }',
        "dimensions.prune.magnitude.sparsity",
        "step (0.5) is larger than the range",
    ),
    "low above high": space_case(
        '"prune.magnitude.sparsity" = { low = 0.5, high = 0.2 }', "low (0.5) is above high (0.2)"
    ),
    "log range from 0": space_case(
        '"prune.magnitude.sparsity" = { low = 0.0, high = 0.5, log = true }',
        "log-scale range needs low > 0",
    ),
    "empty choices": space_case(
        '"distill.soft_target.temperature" = { choices = [] }', "choices must not be empty"
    ),
    "infinite range": space_case(
        '"prune.magnitude.sparsity" = { low = 0.1, high = inf }', "finite number"
    ),
    "negative step": space_case(
        '"prune.magnitude.sparsity" = { low = 0.1, high = 0.5, step = -0.1 }', "greater than 0"
    ),
    "two forms": space_case(
        '"prune.magnitude.sparsity" = { value = 0.5, choices = [0.5] }', "exactly one of"
    ),
    "unknown dimension": space_case(
        '"prune.magnitude.sparsty" = { value = 0.5 }',
        "no such dimension",
        "did you mean 'prune.magnitude.sparsity'",
    ),
    "unknown slot": Case(
        ("run", "{study}"),
        ("unknown slot", "did you mean 'prune'"),
        space=TINY_SPACE.replace('prune = ["none"', 'prunee = ["none"'),
    ),
    "architecture none": Case(
        ("validate", "{study}"),
        ("the architecture cannot be 'none'",),
        space=TINY_SPACE.replace('architecture = ["mlp"]', 'architecture = ["none"]'),
    ),
    "duplicate candidates": Case(
        ("run", "{study}"),
        ("list each candidate once",),
        space=TINY_SPACE.replace('prune = ["none", "magnitude"]', 'prune = ["none", "none"]'),
    ),
    # CLI arguments
    "--timeout nan": cli_case("run", "{study}", "--timeout", "nan", expected=("finite",)),
    "--timeout inf": cli_case("run", "{study}", "--timeout", "inf", expected=("finite",)),
    "--timeout negative": cli_case("run", "{study}", "--timeout", "-5", expected=("above 0",)),
    "--timeout text": cli_case(
        "run", "{study}", "--timeout", "soon", expected=("must be a number", "'soon'")
    ),
    "--n-trials 0": cli_case("run", "{study}", "--n-trials", "0", expected=("at least 1",)),
    "--n-trials text": cli_case(
        "run", "{study}", "--n-trials", "x", expected=("must be a whole number",)
    ),
    "--threads negative": cli_case(
        "run", "{study}", "--threads", "-1", expected=("must be 0 or more",)
    ),
    "unknown option": cli_case(
        "run", "{study}", "--bogus", expected=("unrecognized arguments: --bogus",)
    ),
    "no command": cli_case(expected=("required: COMMAND", "fedsearch --help")),
    "unknown command": cli_case("runn", expected=("invalid choice: 'runn'",)),
    "export trial text": cli_case(
        "export", *STORED, "--trial", "last", "-o", "{tmp}/m.fsz", expected=("whole number",)
    ),
    "export unknown trial": cli_case(
        "export", *STORED, "--trial", "99", "-o", "{tmp}/m.fsz", expected=("no trial 99",)
    ),
    "export unknown format": cli_case(
        "export",
        *STORED,
        "--trial",
        "0",
        "--format",
        "pdf",
        "-o",
        "{tmp}/m.pdf",
        expected=("invalid choice: 'pdf'",),
    ),
    # (without --study-name, a storage holding one study is read: tests/cli/test_study_name.py)
    "unknown study": cli_case(
        "status", "--storage", "{db}", "--study-name", "nope", expected=("no study named 'nope'",)
    ),
    "joining with another configuration": Case(
        ("run", "{study}", *STORED),
        ("different configuration",),
        study=TINY_STUDY.replace("learning_rate = 0.3", "learning_rate = 0.1"),
    ),
    # storage URLs
    "malformed storage URL": cli_case(
        "run", "{study}", "--storage", "notaurl", expected=("--storage", "malformed storage URL")
    ),
    "unknown driver": cli_case(
        "run", "{study}", "--storage", "foo://x/y", expected=("unknown database driver 'foo'",)
    ),
    "unknown dialect driver": cli_case(
        "run",
        "{study}",
        "--storage",
        "postgresql+nosuch://h/d",
        expected=("unknown database driver 'postgresql+nosuch'",),
    ),
    "driver not installed": cli_case(
        "run", "{study}", "--storage", "mysql://u@h/d", expected=("is not installed",)
    ),
    "unreachable PostgreSQL": cli_case(
        "run", "{study}", "--storage", "{pg}", expected=("cannot use the storage", "refused")
    ),
    "unreachable PostgreSQL, read-only": cli_case(
        "pareto", "--storage", "{pg}", "--study-name", "tiny", expected=("cannot use the storage",)
    ),
    "storage URL in the file malformed": study_case(
        'name = "tiny"', 'name = "tiny"\nstorage = "notaurl"', "study.toml: storage", "malformed"
    ),
    "SQLite folder not writable": cli_case(
        "run",
        "{study}",
        "--storage",
        "sqlite:////proc/fedsearch/db.sqlite",
        expected=("cannot write in /proc",),
    ),
    "SQLite on a read-only file system": cli_case(
        "run",
        "{study}",
        "--storage",
        "sqlite:////sys/fedsearch.db",
        expected=("cannot write in /sys",),
    ),
    "SQLite parent is a file": cli_case(
        "run",
        "{study}",
        "--storage",
        "sqlite:///{tmp}/a-file/db.sqlite",
        expected=("a-file is a file, not a folder",),
    ),
    "SQLite path is a folder": cli_case(
        "run",
        "{study}",
        "--storage",
        "sqlite:///{tmp}/a-folder",
        expected=("is a folder; name a file",),
    ),
    "SQLite file is not a database": cli_case(
        "run",
        "{study}",
        "--storage",
        "sqlite:///{tmp}/notes.txt",
        expected=("cannot use the storage", "not a database"),
    ),
    "status on a mistyped SQLite path": cli_case(
        "status", "--storage", MISSING_DB, "--study-name", "tiny", expected=("no database at",)
    ),
    "pareto on a mistyped SQLite path": cli_case(
        "pareto",
        "--storage",
        "sqlite:///{tmp}/missing/sub.db",
        "--study-name",
        "tiny",
        expected=("no database at",),
    ),
    "report on a mistyped SQLite path": cli_case(
        "report",
        "--storage",
        MISSING_DB,
        "--study-name",
        "tiny",
        "-o",
        "{tmp}/report",
        expected=("no database at",),
    ),
    "export on a mistyped SQLite path": cli_case(
        "export",
        "--storage",
        MISSING_DB,
        "--study-name",
        "tiny",
        "--trial",
        "0",
        "-o",
        "{tmp}/m.fsz",
        expected=("no database at",),
    ),
    "status on a file without studies": cli_case(
        "status",
        "--storage",
        "sqlite:///{tmp}/empty.db",
        "--study-name",
        "tiny",
        expected=("holds no studies",),
    ),
    "status with a malformed URL": cli_case(
        "status",
        "--storage",
        "sqlite//x.db",
        "--study-name",
        "tiny",
        expected=("malformed storage URL",),
    ),
    # output paths
    "output_dir is a file": study_case(
        'output_dir = "{output}"',
        'output_dir = "{tmp}/a-file"',
        "study.toml: output_dir",
        "is a file, not a folder",
    ),
    "output_dir under a file": study_case(
        'output_dir = "{output}"',
        'output_dir = "{tmp}/a-file/runs"',
        "study.toml: output_dir",
        "in the way of",
    ),
    "output_dir not writable": study_case(
        'output_dir = "{output}"',
        'output_dir = "/proc/fedsearch-runs"',
        "study.toml: output_dir",
        "cannot write in /proc",
    ),
    "report into a file": cli_case(
        "report", *STORED, "-o", "{tmp}/a-file", expected=("--output", "is a file")
    ),
    "report under a file": cli_case(
        "report", *STORED, "-o", "{tmp}/a-file/report", expected=("in the way of",)
    ),
    "report not writable": cli_case(
        "report", *STORED, "-o", "/proc/fedsearch-report", expected=("cannot write in /proc",)
    ),
    "report from a missing artifact folder": cli_case(
        "report",
        *STORED,
        "-o",
        "{tmp}/report",
        "--artifact-dir",
        "{tmp}/no-artifacts",
        expected=("--artifact-dir", "no-artifacts is not a folder"),
    ),
    "export onto a folder": cli_case(
        "export",
        *STORED,
        "--trial",
        "0",
        "-o",
        "{tmp}/a-folder",
        expected=("--output", "is a folder"),
    ),
    "export under a file": cli_case(
        "export",
        *STORED,
        "--trial",
        "0",
        "-o",
        "{tmp}/a-file/model.fsz",
        expected=("a-file is a file",),
    ),
    "export not writable": cli_case(
        "export",
        *STORED,
        "--trial",
        "0",
        "--format",
        "onnx",
        "-o",
        "/proc/x/model.onnx",
        expected=("cannot write in /proc",),
    ),
}

CONSOLE_SCRIPT_CASES = [
    "malformed storage URL",
    "--timeout nan",
    "dirichlet alpha inf",
    "status on a mistyped SQLite path",
    "output_dir is a file",
    "dataset folder missing",
]


def test_the_table_is_large():
    assert len(CASES) >= 60


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """A folder with a stored tiny study (one finished trial) in ``runs/fedsearch.db``."""
    folder = tmp_path_factory.mktemp("stored")
    study = _write(folder, Case(("run", "{study}"), ()), folder)
    assert main(["run", str(study), "--n-trials", "1"]) == 0
    return folder / "runs" / "fedsearch.db"


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A fresh folder (the current one) with files in the way of bad paths."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEDSEARCH_DATA_DIR", raising=False)
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "notes.txt").write_text("not a database, " * 20)
    (tmp_path / "empty.db").touch()
    garbage = tmp_path / "garbage-mnist"
    garbage.mkdir()
    small = tmp_path / "small-mnist"
    small.mkdir()
    for name in _MNIST_FILES:
        (garbage / name).write_bytes(b"garbage")
        _write_idx(small / name, 16 if name.startswith("train") else 4, "images" in name)
    return tmp_path


_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _write_idx(path: Path, count: int, images: bool) -> None:
    """A valid MNIST-format IDX file with ``count`` examples (labels 0, 1, 0, 1, ...)."""
    if images:
        body = struct.pack(">IIII", 2051, count, 28, 28) + bytes(count * 28 * 28)
    else:
        body = struct.pack(">II", 2049, count) + (np.arange(count) % 2).astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(body))


def _write(folder: Path, case: Case, tmp: Path) -> Path:
    values = {"output": (tmp / "runs").as_posix(), "tmp": tmp.as_posix()}
    (folder / "space.toml").write_text(case.space)
    path = folder / "study.toml"
    path.write_text(case.study.format(**values))
    return path


def _argv(case: Case, study: Path, db: Path, tmp: Path) -> list[str]:
    values = {
        "study": str(study),
        "db": f"sqlite:///{db}",
        "tmp": tmp.as_posix(),
        "pg": UNREACHABLE_PG.format(port=free_port()),
    }
    return [arg.format(**values) for arg in case.argv]


def _snapshot(db: Path, tmp: Path) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """The stored database as SQL, every path under ``tmp`` with its content's hash, and the
    database files beside the stored one."""
    with closing(sqlite3.connect(db)) as connection:
        dump = list(connection.iterdump())
    paths = [
        (str(path.relative_to(tmp)), hashlib.sha256(path.read_bytes()).hexdigest())
        if path.is_file()
        else (str(path.relative_to(tmp)), "folder")
        for path in sorted(tmp.rglob("*"))
    ]
    beside = sorted(path.name for path in db.parent.glob("*.db"))
    return dump, paths, beside


def _run_in_process(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def _assert_refused(code: int, err: str, expected: tuple[str, ...]) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fedsearch") and ": error: " in lines[0], lines[0]
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_in_one_line_and_stores_nothing(name, stored, workdir, capsys):
    case = CASES[name]
    study = _write(workdir, case, workdir)
    before = _snapshot(stored, workdir)
    code, err = _run_in_process(capsys, _argv(case, study, stored, workdir))
    _assert_refused(code, err, case.expected)
    assert _snapshot(stored, workdir) == before


@pytest.mark.e2e
@pytest.mark.parametrize("name", CONSOLE_SCRIPT_CASES)
def test_the_console_script_refuses_it_the_same_way(name, stored, workdir):
    case = CASES[name]
    study = _write(workdir, case, workdir)
    before = _snapshot(stored, workdir)
    result = subprocess.run(
        [FEDSEARCH, *_argv(case, study, stored, workdir)],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=120,
    )
    _assert_refused(result.returncode, result.stderr, case.expected)
    assert _snapshot(stored, workdir) == before
