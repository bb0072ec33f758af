"""Bad input: one clear line naming the problem and the fix, exit 2, nothing stored."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from fedsearch.cli._main import main
from tests.conftest import TINY_SPACE, TINY_STUDY, write_tiny_study

BAD_STUDIES = {
    "unknown field": (
        TINY_STUDY.replace("rounds = 3\nfraction", "roundz = 3\nfraction"),
        TINY_SPACE,
        ["federation.roundz", "unknown field", "did you mean 'rounds'"],
    ),
    "wrong type": (
        TINY_STUDY.replace("num_clients = 4", 'num_clients = "four"'),
        TINY_SPACE,
        ["federation.num_clients", "valid integer", "'four'"],
    ),
    "unknown component": (
        TINY_STUDY,
        TINY_SPACE.replace('architecture = ["mlp"]', 'architecture = ["mpl"]'),
        ["slots.architecture", "unknown architecture 'mpl'", "did you mean 'mlp'"],
    ),
    "bits=0": (
        TINY_STUDY,
        TINY_SPACE.replace("choices = [4, 8]", "choices = [0, 8]"),
        ["quantize.uniform.bits", "bits must be 2 to 8, or 32"],
    ),
    "sparsity=1.5": (
        TINY_STUDY,
        TINY_SPACE + '"prune.magnitude.sparsity" = { value = 1.5 }\n',
        ["prune.magnitude.sparsity", "less than or equal to 0.99", "1.5"],
    ),
    "unknown codec": (
        TINY_STUDY.replace(
            "learning_rate = 0.3", 'learning_rate = 0.3\nuplink_codec = {{ name = "topkk" }}'
        ),
        TINY_SPACE,
        ["federation.uplink_codec", "unknown codec 'topkk'", "did you mean 'topk'"],
    ),
    "codec knob out of range": (
        TINY_STUDY.replace(
            "learning_rate = 0.3",
            'learning_rate = 0.3\nuplink_codec = [{{ name = "topk", params = '
            "{{ fraction = 2.0 }} }}]",
        ),
        TINY_SPACE,
        ["federation.uplink_codec.fraction", "less than or equal to 1", "2.0"],
    ),
    "codec pipeline order": (
        TINY_STUDY.replace(
            "learning_rate = 0.3",
            'learning_rate = 0.3\nuplink_codec = [{{ name = "qsgd" }}, {{ name = "topk" }}]',
        ),
        TINY_SPACE,
        ["federation.uplink_codec", "'qsgd' cannot be followed by another codec"],
    ),
    "error feedback on the downlink": (
        TINY_STUDY.replace(
            "learning_rate = 0.3",
            'learning_rate = 0.3\ndownlink_codec = [{{ name = "error_feedback" }}, '
            '{{ name = "topk" }}]',
        ),
        TINY_SPACE,
        ["federation.downlink_codec", "per-client state", 'downlink = "delta"'],
    ),
    "unknown codec in a search slot": (
        TINY_STUDY,
        TINY_SPACE.replace(
            "[dimensions]", 'uplink_codec = ["float32", "topk+qsgdd"]\n\n[dimensions]'
        ),
        ["slots.uplink_codec", "unknown codec 'qsgdd'", "did you mean 'qsgd'"],
    ),
    "malformed TOML": (
        TINY_STUDY.replace("rounds = 3\nfraction", "rounds = \nfraction"),
        TINY_SPACE,
        ["study.toml", "malformed TOML", "line"],
    ),
}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_clear_line(code: int, err: str, expected: list[str]) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fedsearch: error: ")
    for fragment in expected:
        assert fragment in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("case", sorted(BAD_STUDIES))
def test_bad_study_is_refused_before_anything_is_stored(tmp_path, capsys, case):
    study_text, space_text, expected = BAD_STUDIES[case]
    study = write_tiny_study(tmp_path, study_text, space_text)
    for command in ("run", "validate"):
        code, _, err = run_cli(capsys, command, str(study))
        assert_one_clear_line(code, err, expected)
    assert not (tmp_path / "runs").exists()


def test_missing_file(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", str(tmp_path / "nope.toml"))
    assert_one_clear_line(code, err, ["nope.toml", "file not found", "check the path"])


def test_bad_input_leaves_an_existing_study_untouched(tmp_path, capsys):
    study = write_tiny_study(tmp_path)
    assert run_cli(capsys, "run", str(study), "--n-trials", "1")[0] == 0
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    before = optuna.load_study(study_name="tiny", storage=storage)
    snapshot = [(t.number, t.state, t.values) for t in before.trials]
    attrs = before.user_attrs

    broken = write_tiny_study(tmp_path, TINY_STUDY, TINY_SPACE.replace("[4, 8]", "[0, 8]"))
    code, _, err = run_cli(capsys, "run", str(broken))
    assert_one_clear_line(code, err, ["bits must be 2 to 8"])

    after = optuna.load_study(study_name="tiny", storage=storage)
    assert [(t.number, t.state, t.values) for t in after.trials] == snapshot
    assert after.user_attrs == attrs


def test_joining_with_a_different_configuration_is_refused(tmp_path, capsys):
    study = write_tiny_study(tmp_path)
    assert run_cli(capsys, "run", str(study), "--n-trials", "1")[0] == 0
    write_tiny_study(tmp_path, TINY_STUDY.replace("learning_rate = 0.3", "learning_rate = 0.1"))
    code, _, err = run_cli(capsys, "run", str(study), "--n-trials", "1")
    assert_one_clear_line(code, err, ["different configuration", "--study-name"])
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 1


def test_console_script_exits_2_without_traceback(tmp_path):
    study = write_tiny_study(tmp_path, TINY_STUDY.replace("seed = 0", "seed = 0\nsed = 1"))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("fedsearch")), "run", str(study)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "sed: unknown field; did you mean 'seed'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["run", "x.toml", "--n-trials", "0"])
    assert caught.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_a_run_that_fails_preparing_its_data_stores_no_study_and_the_fixed_file_runs(
    tmp_path, capsys
):
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    study = write_tiny_study(tmp_path)
    assert run_cli(capsys, "run", str(study), "--study-name", "other", "--n-trials", "1")[0] == 0

    write_tiny_study(tmp_path, TINY_STUDY.replace("num_clients = 4", "num_clients = 5000"))
    code, _, err = run_cli(capsys, "run", str(study), "--n-trials", "1")
    assert_one_clear_line(code, err, ["study.toml: federation.num_clients", "for 5000 clients"])
    assert optuna.get_all_study_names(storage) == ["other"]

    write_tiny_study(tmp_path)
    code, _, err = run_cli(capsys, "run", str(study), "--n-trials", "1")
    assert code == 0, err
    assert sorted(optuna.get_all_study_names(storage)) == ["other", "tiny"]
    fixed = optuna.load_study(study_name="tiny", storage=storage)
    assert [trial.state for trial in fixed.trials] == [optuna.trial.TrialState.COMPLETE]
    assert fixed.user_attrs["config"]["federation"]["num_clients"] == 4


@pytest.fixture
def empty_postgres_url(postgres_url):
    """A PostgreSQL database of its own, without any table."""
    server = sqlalchemy.make_url(postgres_url)
    name = f"fedsearch_empty_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def test_read_only_commands_create_no_tables_in_an_empty_postgresql_database(
    empty_postgres_url, capsys
):
    for command in ("status", "pareto"):
        code, _, err = run_cli(
            capsys, command, "--storage", empty_postgres_url, "--study-name", "x"
        )
        assert_one_clear_line(code, err, ["--storage", "holds no studies"])
    engine = sqlalchemy.create_engine(empty_postgres_url)
    try:
        assert sqlalchemy.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
