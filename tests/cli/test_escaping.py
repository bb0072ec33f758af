"""User data in square brackets reaches the terminal unchanged: rich never reads it as markup."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from fedsearch.cli._display import pareto_table, plugins_table, space_table, status_tables
from fedsearch.cli._main import main
from fedsearch.host import PluginInfo
from tests.conftest import TINY_SPACE, write_tiny_study

BRACKETED_NAME = "e-[/]"
CODEC_SPACE = TINY_SPACE.replace("[dimensions]", 'uplink_codec = ["qsgd"]\n\n[dimensions]')
CODEC_SELECTION = {
    "architecture": {"name": "mlp", "params": {"depth": 1}},
    "uplink_codec": [{"name": "absmax", "params": {"bits": 4}}],
}


def rendered(*renderables: object) -> str:
    console = Console(file=io.StringIO(), record=True, width=200, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def pareto_row(selection: dict) -> dict:
    return {
        "trial": 0,
        "val_accuracy": 0.5,
        "test_accuracy": 0.25,
        "model_bytes": 100,
        "comm_bytes": 2048,
        "selection": selection,
    }


def test_a_codec_pipeline_and_a_bracketed_study_name_show_in_the_pareto_table():
    text = rendered(
        pareto_table([pareto_row(CODEC_SELECTION)], f"Pareto front of {BRACKETED_NAME}", full=True)
    )
    assert "mlp(depth=1) + uplink_codec=[absmax(b=4)]" in text
    assert f"Pareto front of {BRACKETED_NAME}" in text


def test_status_tables_show_names_workers_and_errors_with_brackets():
    summary = {
        "study": BRACKETED_NAME,
        "budget": 3,
        "states": {"COMPLETE": 1, "FAIL": 1},
        "workers": {"[host]:1": {"states": {"COMPLETE": 1, "FAIL": 1}, "busy_s": 2.0}},
        "failures": [
            {
                "trial": 1,
                "worker": "[host]:1",
                "error_type": "ValueError",
                "error": "shape [red]mismatch[/red] in [bold]",
            }
        ],
        "best": {"val_accuracy": 0},
        "pareto": [pareto_row(CODEC_SELECTION)],
        "front": {"accuracy_floor": None, "complete": 1, "infeasible": 0, "identical": 0},
    }
    text = rendered(*status_tables(summary, full=True))
    assert f"study {BRACKETED_NAME} (budget" in text
    assert "[host]:1" in text
    assert "ValueError: shape [red]mismatch[/red] in [bold]" in text
    assert "uplink_codec=[absmax(b=4)]" in text


def test_plugin_and_space_tables_show_brackets():
    info = PluginInfo(
        name="acme[beta]", distribution="acme", version="1.0", components={"codec": ["[x]"]}
    )
    text = rendered(plugins_table([info]), space_table([("[dim]", "always", "[1, 2]")]))
    assert "acme[beta]" in text and "codec: [x]" in text
    assert "[dim]" in text and "[1, 2]" in text


@pytest.fixture
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")


def test_the_cli_prints_a_bracketed_study_and_its_codec_selection(tmp_path, capsys, wide_terminal):
    study = write_tiny_study(tmp_path, space=CODEC_SPACE)
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    stored = ["--storage", storage, "--study-name", BRACKETED_NAME]
    assert main(["run", str(study), *stored, "--n-trials", "1", "--full"]) == 0
    out = capsys.readouterr().out
    assert f"study {BRACKETED_NAME} in {storage}" in out
    assert f"Pareto front of {BRACKETED_NAME}" in out
    assert "uplink_codec=[qsgd(" in out
    for command in ("pareto", "status"):
        assert main([command, *stored, "--full"]) == 0
        out = capsys.readouterr().out
        assert BRACKETED_NAME in out
        assert "uplink_codec=[qsgd(" in out
    target = tmp_path / "[b]" / "model.fsz"
    assert main(["export", *stored, "--trial", "0", "-o", str(target)]) == 0
    assert str(target) in capsys.readouterr().out  # the export table names the file
    report = tmp_path / "[r]"
    assert main(["report", *stored, "-o", str(report)]) == 0
    assert f"report written: {report / 'index.html'}" in capsys.readouterr().out
