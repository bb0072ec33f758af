"""The report page: plots inlined, the Pareto table, artifacts copied beside it."""

from __future__ import annotations

import base64
import html
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from fedsearch._errors import ConfigError
from fedsearch.report._plots import plot_pairs
from fedsearch.search import OBJECTIVE_NAMES, describe_selection
from fedsearch.study import (
    check_writable_folder,
    describe_front,
    pareto_rows,
    pareto_trials,
    study_status,
)
from fedsearch.study._export import stored_artifact

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
td.text, th.text { text-align: left; }
.plots img { max-width: 32%; border: 1px solid #eee; }
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
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = pareto_trials(study) if complete else []
    plots = plot_pairs(complete, front, names, folder)
    identical = {row["trial"]: row["identical"] for row in pareto_rows(study)}
    shown = [trial for trial in front if trial.number in identical]
    store_dir = artifact_dir or study.user_attrs.get("artifact_dir")
    links = _copy_artifacts(shown, Path(store_dir) if store_dir else None, folder / "artifacts")
    status = study_status(study)
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>fedsearch report: {html.escape(study.study_name)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>fedsearch study <code>{html.escape(study.study_name)}</code></h1>",
            f"<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Trials by state: "
            + ", ".join(f"{state} {count}" for state, count in status["states"].items() if count)
            + f"; budget {status['budget']}.</p>",
            _teacher_paragraph(study.user_attrs.get("teacher")),
            "<h2>Pareto front</h2>",
            '<div class="plots">',
            *(
                f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,'
                f'{base64.b64encode(path.read_bytes()).decode()}">'
                for path in plots
            ),
            "</div>",
            f"<p>{html.escape(describe_front(status['front']))}</p>",
            _pareto_table(shown, names, links, identical),
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
    return (
        f"<p>Teacher: test accuracy {teacher['test_accuracy']:.4f}, validation accuracy "
        f"{teacher['val_accuracy']:.4f}, artifact {teacher['artifact_bytes']} bytes, federated "
        f"training traffic {teacher.get('training_bytes', '-')} bytes (charged to every trial "
        "that distils from it).</p>"
    )


def _pareto_table(
    front: list[optuna.trial.FrozenTrial],
    names: list[str],
    links: dict[int, str],
    identical: dict[int, list[int]],
) -> str:
    headers = ["trial", *names, "test_accuracy", "parameters", "nonzero", "worker", "artifact"]
    rows = []
    for trial in front:
        attrs = trial.user_attrs
        others = identical.get(trial.number, [])
        cells = [f"{trial.number} +{len(others)} identical" if others else str(trial.number)]
        cells += [
            _format_value(name, value) for name, value in zip(names, trial.values, strict=True)
        ]
        cells += [
            _format_value("accuracy", attrs.get("test_accuracy")),
            str(attrs.get("parameters", "-")),
            str(attrs.get("nonzero_parameters", "-")),
        ]
        link = links.get(trial.number)
        artifact = f'<a href="{html.escape(link)}">{html.escape(link)}</a>' if link else "-"
        rows.append(
            "<tr>"
            + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
            + f'<td class="text">{html.escape(str(attrs.get("worker", "-")))}</td>'
            + f'<td class="text">{artifact}</td></tr>'
            + f'<tr><td></td><td class="text" colspan="{len(headers) - 1}">'
            + html.escape(describe_selection(attrs.get("selection", {})))
            + "</td></tr>"
        )
    head = "".join(
        f'<th class="{"text" if h in ("worker", "artifact") else ""}">{h}</th>' for h in headers
    )
    return f'<table id="pareto"><tr>{head}</tr>{"".join(rows)}</table>'


def _format_value(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name.endswith("_bytes"):
        return f"{int(value)}"
    return f"{value:.4f}"


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
