"""``fedsearch status`` and ``fedsearch report`` on a finished study."""

from __future__ import annotations

import json
import re

import pytest
from optuna.trial import TrialState

from fedsearch import resolve_study, run_study
from fedsearch._units import format_bytes, format_ratio
from fedsearch.cli._main import main
from fedsearch.report import write_report
from fedsearch.study import pareto_rows, pareto_trials
from fedsearch.study._storage import worker_id
from tests.conftest import write_tiny_study


@pytest.fixture(scope="module")
def finished(tmp_path_factory, registry):
    folder = tmp_path_factory.mktemp("status")
    study = resolve_study(write_tiny_study(folder), registry)
    return study.storage_url, run_study(study)


def test_status_counts_trials_by_state_and_worker(finished, capsys):
    storage, study = finished
    assert main(["status", "--storage", storage, "--study-name", "tiny", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["budget"] == 3
    assert status["states"]["COMPLETE"] == 3
    assert sum(status["states"].values()) == len(study.trials)
    assert list(status["workers"]) == [worker_id()]
    assert status["workers"][worker_id()]["states"] == {"COMPLETE": 3}
    assert status["pareto"] == pareto_rows(study)
    best_accuracy = max(pareto_trials(study), key=lambda trial: trial.values[0])
    assert status["best"]["val_accuracy"] == best_accuracy.number
    assert main(["status", "--storage", storage, "--study-name", "tiny"]) == 0
    table = capsys.readouterr().out
    assert "trials by worker" in table and worker_id() in table
    assert "best trade-offs so far" in table


def test_report_is_self_contained_with_plots_table_and_artifacts(finished, tmp_path, capsys):
    storage, study = finished
    out = tmp_path / "report"
    assert main(["report", "--storage", storage, "--study-name", "tiny", "-o", str(out)]) == 0
    page = (out / "index.html").read_text()
    pngs = sorted(path.name for path in out.glob("*.png"))
    assert pngs == [
        "learning-curves.png",
        "pareto-model_bytes-comm_bytes.png",
        "pareto-val_accuracy-comm_bytes.png",
        "pareto-val_accuracy-model_bytes.png",
    ]
    for name in pngs:
        assert (out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert f'<a href="{name}" target="_blank"><img' in page  # opens full size
    assert page.count('src="data:image/png;base64,') == 4
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    front = pareto_trials(study)
    links = re.findall(r'<a href="(artifacts/trial-(\d+)\.fsz)">', page)
    assert [int(number) for _, number in links] == [trial.number for trial in front]
    for (link, _), trial in zip(links, front, strict=True):
        assert (out / link).stat().st_size == trial.values[1]  # the artifact is model_bytes long
        assert f"{trial.user_attrs['test_accuracy']:.4f}" in page
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert f"COMPLETE {len(complete)}" in page


def test_report_table_shows_readable_sizes_teacher_ratios_bits_and_curves(finished, tmp_path):
    storage, study = finished
    out = tmp_path / "report"
    assert main(["report", "--storage", storage, "-o", str(out)]) == 0
    page = (out / "index.html").read_text()
    teacher = study.user_attrs["teacher"]
    assert f"model size {format_bytes(teacher['artifact_bytes'])}" in page
    for trial in pareto_trials(study):
        row = page[page.index(f'<tr id="trial-{trial.number}">') :]
        row = row[: row.index("</details>")]
        model_bytes, comm_bytes = trial.values[1], trial.values[2]
        assert f"<td>{format_bytes(model_bytes)}</td>" in row
        assert f"<td>{format_bytes(comm_bytes)}</td>" in row
        assert f"model {format_ratio(teacher['artifact_bytes'], model_bytes)} smaller" in row
        gap = trial.values[0] - teacher["val_accuracy"]
        assert f"accuracy {gap:+.4f}" in row
        assert f"<td>{trial.user_attrs['sparsity']:.0%}</td>" in row
        weight_bits = {bits for name, bits in trial.user_attrs["bits"].items() if "weight" in name}
        assert f"<td>{min(weight_bits)}" in row
        assert row.count("<polyline") == 1  # its learning curve
        labels = trial.user_attrs["layer_labels"]
        for layer in trial.user_attrs["layers"]:  # readable names: "Linear 1 weight (16x64)"
            assert re.fullmatch(r"Linear \d (weight|bias) \([\dx]+\)", labels[layer["name"]])
            assert f'<td class="text">{labels[layer["name"]]}</td>' in row


def test_every_report_plot_marks_the_teacher_on_log_byte_axes(finished, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    _, study = finished
    figures = []
    savefig = Figure.savefig

    def keep(figure, path):
        figures.append((path, figure))
        savefig(figure, path)

    monkeypatch.setattr(Figure, "savefig", keep)
    write_report(study, tmp_path / "report")
    teacher = study.user_attrs["teacher"]
    reference = {
        "val_accuracy": teacher["val_accuracy"],
        "model_bytes": teacher["artifact_bytes"],
        "comm_bytes": teacher["training_bytes"],
    }
    pairs = [path for path, _ in figures if path.name.startswith("pareto-")]
    assert len(pairs) == 3
    for path, figure in figures:
        (axes,) = figure.axes
        legend = [text.get_text() for text in axes.get_legend().get_texts()]
        assert any(entry.startswith("teacher") for entry in legend), (path, legend)
        if not path.name.startswith("pareto-"):
            continue
        x_name, y_name = path.stem.removeprefix("pareto-").split("-")
        assert "front of this projection" in legend
        star = [c for c in axes.collections if c.get_label() == "teacher"]
        assert star[0].get_offsets().tolist() == [[reference[x_name], reference[y_name]]]
        for name, scale, label in (
            (x_name, axes.get_xscale(), axes.get_xlabel()),
            (y_name, axes.get_yscale(), axes.get_ylabel()),
        ):
            if name.endswith("_bytes"):
                assert scale == "log" and label.endswith("(bytes, log scale)")
            else:
                assert label == "validation accuracy (fraction correct)"


@pytest.mark.parametrize("command", ["status", "report"])
def test_unknown_study_is_one_line_and_exit_2(finished, command, tmp_path, capsys):
    storage, _ = finished
    args = [command, "--storage", storage, "--study-name", "nope"]
    if command == "report":
        args += ["-o", str(tmp_path / "out")]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "no study named 'nope'" in error and "studies there: tiny" in error


def test_a_bytes_axis_holding_a_zero_stays_linear(tmp_path):
    from matplotlib import pyplot

    from fedsearch.report._plots import _format_axes

    figure, axes = pyplot.subplots()
    axes.scatter([0.0, 1500.0, 3_000_000.0], [0.5, 0.7, 0.9])
    _format_axes(axes, "comm_bytes", "val_accuracy")
    assert axes.get_xscale() == "linear" and axes.get_xlabel().endswith("(bytes)")
    axes.cla()
    axes.scatter([10.0, 1500.0, 3_000_000.0], [0.5, 0.7, 0.9])
    _format_axes(axes, "comm_bytes", "val_accuracy")
    assert axes.get_xscale() == "log" and axes.get_xlabel().endswith("(bytes, log scale)")
    pyplot.close(figure)
