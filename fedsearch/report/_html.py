"""The report page: plots inlined, the Pareto table, artifacts copied beside it."""

from __future__ import annotations

import base64
import html
import json
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from fedsearch._errors import ConfigError
from fedsearch._units import format_bytes
from fedsearch.report._plots import plot_learning_curves, plot_pairs
from fedsearch.report._sparkline import sparkline
from fedsearch.search import OBJECTIVE_NAMES, describe_selection
from fedsearch.study import (
    check_writable_folder,
    describe_front,
    front_summary,
    pareto_rows,
    pareto_trials,
)
from fedsearch.study._export import stored_artifact
from fedsearch.study._trial_facts import (
    accuracy_history,
    bits_summary,
    format_objective,
    layer_rows,
    objective_label,
    sparsity_summary,
    teacher_ratios,
    teacher_reference,
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
td.text, th.text { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 1%; }
.plots a { width: 49%; }
.plots img { width: 100%; border: 1px solid #eee; }
details { margin: 0.2em 0; }
td details table { font-size: 0.85em; }
pre { background: #f6f6f6; padding: 1em; white-space: pre-wrap; }
"""


def write_report(
    study: optuna.Study, folder: str | Path, *, artifact_dir: str | Path | None = None
) -> Path:
    """Write ``index.html``, the PNG plots and the Pareto trials' artifacts into ``folder``.

    The page embeds its plots (data URIs) and styles, so it can be mailed on
    its own; its artifact links point to ``artifacts/`` beside it.

    Args:
        study: A fedsearch study (objectives named as in ``OBJECTIVE_NAMES``).
        folder: Output folder (created).
        artifact_dir: The study's artifact store; default: the folder recorded
            in the study when it was created.

    Returns:
        The path of ``index.html``.

    Raises:
        ConfigError: ``folder`` is a file or cannot be written, or ``artifact_dir``
            is not a folder (nothing is written).
    """
    folder = Path(folder)
    check_writable_folder(folder, field="--output")
    if artifact_dir is not None and not Path(artifact_dir).is_dir():
        raise ConfigError(
            f"{artifact_dir} is not a folder; pass the study's artifacts/ folder, or leave "
            "--artifact-dir out to use the one recorded in the study",
            field="--artifact-dir",
        )
    folder.mkdir(parents=True, exist_ok=True)
    names = study.metric_names or list(OBJECTIVE_NAMES)
    trials = study.get_trials(deepcopy=False)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    front = pareto_trials(study) if complete else []  # the front, computed once
    rows = pareto_rows(study, front)
    teacher = study.user_attrs.get("teacher")
    plots = plot_pairs(study, complete, front, names, folder, teacher_reference(teacher))
    identical = {row["trial"]: row["identical"] for row in rows}
    shown = [trial for trial in front if trial.number in identical]
    if shown:
        plots.append(plot_learning_curves(shown, teacher, folder))
    store_dir = artifact_dir or study.user_attrs.get("artifact_dir")
    links = _copy_artifacts(shown, Path(store_dir) if store_dir else None, folder / "artifacts")
    states = Counter(trial.state.name for trial in trials)
    budget = study.user_attrs.get("config", {}).get("search", {}).get("n_trials")
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>fedsearch report: {html.escape(study.study_name)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>fedsearch study <code>{html.escape(study.study_name)}</code></h1>",
            f"<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Trials by state: "
            + ", ".join(f"{state} {count}" for state, count in sorted(states.items()))
            + f"; budget {budget}. Sizes are SI: 1 kB = 1000 bytes.</p>",
            _teacher_paragraph(teacher),
            "<h2>Pareto front</h2>",
            "<p>Click a plot to open it full size. The star is the teacher; the line is the "
            "front of each pair of objectives, red dots the trials on the front of all "
            "objectives.</p>",
            '<div class="plots">',
            *(
                f'<a href="{html.escape(path.name)}" target="_blank">'
                f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,'
                f'{base64.b64encode(path.read_bytes()).decode()}"></a>'
                for path in plots
            ),
            "</div>",
            f"<p>{html.escape(describe_front(front_summary(study)))}</p>",
            _pareto_table(study, shown, names, links, identical, teacher),
            "<h2>Configuration</h2>",
            f"<pre>{html.escape(json.dumps(study.user_attrs.get('config', {}), indent=2))}</pre>",
            "</body></html>",
        ]
    )
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _teacher_paragraph(teacher: dict[str, Any] | None) -> str:
    if not teacher:
        return "<p>No teacher.</p>"
    training = teacher.get("training_bytes")
    pretrained = teacher.get("pretrained")
    origin = f" (loaded from the pretrained file {html.escape(pretrained)})" if pretrained else ""
    return (
        f"<p>Teacher{origin}: validation accuracy {teacher['val_accuracy']:.4f}, test accuracy "
        f"{teacher['test_accuracy']:.4f}, model size {format_bytes(teacher['artifact_bytes'])}, "
        f"federated training traffic {format_bytes(training) if training else '-'} (charged to "
        "every trial that distils from it).</p>"
    )


def _pareto_table(
    study: optuna.Study,
    front: list[optuna.trial.FrozenTrial],
    names: list[str],
    links: dict[int, str],
    identical: dict[int, list[int]],
    teacher: dict[str, Any] | None,
) -> str:
    """One row per front trial: objectives with units, ratios to the teacher, bits, sparsity,
    learning curve, artifact; the selection and the per-layer table below it."""
    headers = [
        "trial",
        *(objective_label(name) for name in names),
        "vs teacher",
        "test accuracy",
        "weight bits",
        "sparsity",
        "learning curve",
        "artifact",
    ]
    rows = []
    for trial in front:
        attrs = trial.user_attrs
        others = identical.get(trial.number, [])
        values = dict(zip(names, trial.values, strict=True))
        ratios = teacher_ratios(values, teacher)
        cells = [f"{trial.number} +{len(others)} identical" if others else str(trial.number)]
        cells += [format_objective(name, value) for name, value in values.items()]
        vs_teacher = (
            "<br>".join(html.escape(f"{what} {ratio}") for what, ratio in ratios.items()) or "-"
        )
        link = links.get(trial.number)
        artifact = f'<a href="{html.escape(link)}">{html.escape(link)}</a>' if link else "-"
        rows.append(
            f'<tr id="trial-{trial.number}">'
            + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
            + f'<td class="text">{vs_teacher}</td>'
            + f"<td>{html.escape(format_objective('accuracy', attrs.get('test_accuracy')))}</td>"
            + f"<td>{html.escape(bits_summary(trial))}</td>"
            + f"<td>{html.escape(sparsity_summary(trial))}</td>"
            + f"<td>{sparkline(accuracy_history(trial))}</td>"
            + f'<td class="text">{artifact}</td></tr>'
            + f'<tr><td></td><td class="text" colspan="{len(headers) - 1}">'
            + html.escape(describe_selection(attrs.get("selection", {})))
            + _layers(trial)
            + "</td></tr>"
        )
    head = "".join(f"<th>{html.escape(header)}</th>" for header in headers)
    return f'<table id="pareto"><tr>{head}</tr>{"".join(rows)}</table>'


def _layers(trial: optuna.trial.FrozenTrial) -> str:
    """A folded per-layer table: readable name, bits, sparsity, encoding, bytes."""
    layers = layer_rows(trial)
    if not layers:
        return ""
    body = "".join(
        f'<tr><td class="text">{html.escape(layer["label"])}</td><td>{layer["bits"]}</td>'
        f'<td>{layer["sparsity"]:.1%}</td><td class="text">{html.escape(layer["encoding"])}'
        f"</td><td>{html.escape(format_bytes(layer['bytes']))}</td></tr>"
        for layer in layers
    )
    return (
        "<details><summary>per-layer bits and sparsity</summary><table>"
        "<tr><th>tensor</th><th>bits</th><th>sparsity</th><th>encoding</th><th>stored</th></tr>"
        f"{body}</table></details>"
    )


def _copy_artifacts(
    front: list[optuna.trial.FrozenTrial], store_dir: Path | None, target: Path
) -> dict[int, str]:
    """Copy each Pareto trial's artifact beside the report; trial number -> relative link.

    Raises:
        ConfigError: A trial names an artifact outside ``store_dir``.
    """
    if store_dir is None or not store_dir.is_dir():
        return {}
    target.mkdir(parents=True, exist_ok=True)
    links = {}
    for trial in front:
        artifact_id = trial.user_attrs.get("artifact_id")
        if artifact_id is None:
            continue
        source = stored_artifact(store_dir, artifact_id, trial.number)
        path = target / f"trial-{trial.number}.fsz"
        path.unlink(missing_ok=True)
        shutil.copyfile(source, path)
        links[trial.number] = f"artifacts/{path.name}"
    return links
