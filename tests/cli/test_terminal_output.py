"""The terminal at 80 columns: one line per trial, SI units, --version, help, --study-name."""

from __future__ import annotations

import argparse
import re

import optuna
import pytest

import fedsearch
from fedsearch import resolve_study, run_study
from fedsearch._units import format_bytes
from fedsearch.cli._main import build_parser, main
from fedsearch.search import describe_searched
from fedsearch.study import pareto_rows
from tests.conftest import write_tiny_study


@pytest.fixture(scope="module")
def finished(tmp_path_factory, registry):
    """A tiny study (3 trials) that searches pruning, quantization and distillation."""
    folder = tmp_path_factory.mktemp("terminal")
    study = resolve_study(write_tiny_study(folder), registry)
    return study.storage_url, run_study(study)


@pytest.mark.parametrize(
    ("count", "shown"),
    [(0, "0 B"), (764, "764 B"), (999, "999 B"), (1000, "1.00 kB"), (1536, "1.54 kB"),
     (99_940, "99.9 kB"), (783_000, "783 kB"), (1_234_567, "1.23 MB"), (5e9, "5.00 GB")],
)  # fmt: skip
def test_sizes_are_si_with_three_digits(count, shown):
    assert format_bytes(count) == shown


def test_pareto_prints_one_line_per_trial_at_80_columns(finished, capsys, monkeypatch):
    storage, study = finished
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["pareto", "--storage", storage]) == 0  # the only study: no --study-name
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = pareto_rows(study)
    assert rows
    for row in rows:
        (line,) = [line for line in lines if re.match(rf"\s*{row['trial']}\s+0\.\d{{4}}\s", line)]
        assert format_bytes(row["model_bytes"]) in line
        assert format_bytes(row["comm_bytes"]) in line
        summary = describe_searched(row["selection"], row["params"])
        assert line.rstrip().endswith(summary) or "…" in line
    assert sum(line.startswith("fixed settings: ") for line in lines) == 1
    assert not any(re.search(r"\d (KB|MB)\b", line) for line in lines)  # no 1024-based "KB"


def test_searched_summary_names_only_what_the_trial_sampled(finished):
    _, study = finished
    for trial in study.trials:
        summary = describe_searched(trial.user_attrs["selection"], trial.params)
        width = trial.params.get("architecture.mlp.widths.0")
        assert summary.startswith(f"mlp w{width}")  # depth is fixed: not shown
        assert "scope=" not in summary and "schedule" not in summary  # fixed settings
        assert ("prune" in summary) == (trial.params["prune"] == "magnitude")
        bits = trial.params.get("quantize.uniform.bits")
        assert (f"int{bits}" in summary) == (bits is not None)


def test_full_shows_every_setting(finished, capsys, monkeypatch):
    storage, _ = finished
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["pareto", "--storage", storage, "--full"]) == 0
    out = capsys.readouterr().out
    assert "fixed settings" not in out
    assert "mlp(depth=1, widths=[" in out


def test_study_name_is_needed_when_the_storage_holds_two_studies(finished, tmp_path, capsys):
    storage, study = finished
    optuna.create_study(  # a second, empty study beside it
        storage=storage, study_name="other", directions=study.directions
    )
    try:
        assert main(["status", "--storage", storage]) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0
        assert "holds 2 studies (tiny, other)" in error and "--study-name" in error
        assert main(["status", "--storage", storage, "--study-name", "tiny"]) == 0
    finally:
        optuna.delete_study(study_name="other", storage=storage)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"fedsearch {fedsearch.__version__}"


def test_every_subcommand_has_a_description_examples_and_help_for_every_option():
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) >= {"run", "pareto", "status", "report", "export", "validate"}
    for name, command in commands.choices.items():
        assert command.description, name
        assert command.epilog.startswith("examples:\n  fedsearch " + name), name
        for action in command._actions:
            assert action.help, (name, action.dest)
