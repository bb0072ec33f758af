"""What optuna-dashboard shows of a fedsearch study beyond Optuna's own pages.

Each finished trial gets a Markdown note: its objectives labelled and with
units, how it compares with the teacher, its learning curve, a per-layer table
of bits and sparsity with readable layer names, and the command that exports
it. After a run, the study note gets plots the dashboard renders as images
(uploaded as study artifacts): the front with log byte axes and the teacher
marked, and the learning curves of the front.
"""

from __future__ import annotations

import json
import logging
import tempfile
import types
from pathlib import Path

import optuna
import sqlalchemy
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import FrozenTrial, TrialState

from fedsearch._units import format_bytes
from fedsearch.search import describe_searched, describe_selection
from fedsearch.study._pareto import is_feasible, pareto_trials
from fedsearch.study._trial_facts import (
    accuracy_history,
    format_objective,
    layer_rows,
    objective_label,
    teacher_ratios,
    teacher_reference,
    trial_values,
)

PLOTS_ATTR = "dashboard_plots"
"""Study user attribute: artifact ids of the note's plots and ``study-config.json``."""
_SPARK = "▁▂▃▄▅▆▇█"
_logger = logging.getLogger(__name__)


def sparkline(values: list[float]) -> str:
    """``▁▃▅▇█``: one block per value, scaled between the lowest and the highest."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(_SPARK[round((value - low) / span * (len(_SPARK) - 1))] for value in values)


def shown_url(storage_url: str) -> str:
    """The storage URL with any password hidden (it goes into notes others read)."""
    try:
        return sqlalchemy.make_url(storage_url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return storage_url


def trial_note(study: optuna.Study, trial: FrozenTrial, storage_url: str) -> str:
    """Markdown note of a COMPLETE trial."""
    values = trial_values(study, trial)
    attrs = trial.user_attrs
    ratios = teacher_ratios(values, study.user_attrs.get("teacher"))
    compared = {"val_accuracy": "accuracy", "model_bytes": "model", "comm_bytes": "comm"}
    lines = [
        f"## Trial {trial.number}: "
        + ", ".join(f"{objective_label(k)} {format_objective(k, v)}" for k, v in values.items()),
        "",
        "| objective | value | vs teacher |",
        "| --- | --- | --- |",
        *(
            f"| {objective_label(name)} | {format_objective(name, value)}"
            f"{f' ({int(value):,} bytes)' if name.endswith('_bytes') else ''} "
            f"| {ratios.get(compared.get(name, ''), '-')} |"
            for name, value in values.items()
        ),
        "",
        f"Test accuracy {format_objective('accuracy', attrs.get('test_accuracy'))} (never seen "
        f"by the search). Feasible: {'yes' if is_feasible(trial) else 'no (kept off the front)'}.",
        "",
        f"Searched choices: `{describe_searched(attrs.get('selection', {}), trial.params)}`  ",
        f"Everything it ran: `{describe_selection(attrs.get('selection', {}))}`",
        "",
        *_learning_curve(trial),
        *_layers(trial),
        "### Files",
        "",
        f"- `trial-{trial.number}.fsz`: the compressed model, a fedsearch artifact; the "
        "model size objective is its length. Export it (ONNX, TorchScript, ExecuTorch) with",
        "",
        f"      fedsearch export --storage {shown_url(storage_url)} --study-name "
        f"{study.study_name} --trial {trial.number} --format onnx -o trial-{trial.number}.onnx",
        "",
        f"- `history-{trial.number}.json`: every round's validation accuracy, loss and bytes.",
    ]
    return "\n".join(lines)


def _learning_curve(trial: FrozenTrial) -> list[str]:
    history = [r for r in trial.user_attrs.get("history", []) if r.get("val_accuracy") is not None]
    curve = accuracy_history(trial)
    if not history:
        return []
    best = max(range(len(curve)), key=curve.__getitem__)
    return [
        "### Learning curve",
        "",
        f"Validation accuracy per round: `{sparkline(curve)}` from {curve[0]:.4f} to "
        f"{curve[-1]:.4f} (best {curve[best]:.4f}, round {history[best]['round']}).",
        "",
        "| round | validation accuracy | train loss | down | up |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {r['round']} | {r['val_accuracy']:.4f} | {r['train_loss']:.4f} "
            f"| {format_bytes(r['downlink_bytes'])} | {format_bytes(r['uplink_bytes'])} |"
            for r in history
        ),
        "",
    ]


def _layers(trial: FrozenTrial) -> list[str]:
    layers = layer_rows(trial)
    if not layers:
        return []
    return [
        "### Layers: bits and sparsity",
        "",
        "| tensor | bits | sparsity | encoding | stored |",
        "| --- | ---: | ---: | --- | ---: |",
        *(
            f"| {layer['label']} | {layer['bits']} | {layer['sparsity']:.1%} "
            f"| {layer['encoding']} | {format_bytes(layer['bytes'])} |"
            for layer in layers
        ),
        "",
    ]


def save_trial_note(study: optuna.Study, trial: FrozenTrial, storage_url: str) -> None:
    """Store the note of a COMPLETE trial (nothing without optuna-dashboard, or for others)."""
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return
    if trial.state != TrialState.COMPLETE:
        return
    # save_note reads only these three attributes of a live trial; a finished trial has none.
    handle = types.SimpleNamespace(storage=study._storage, study=study, _trial_id=trial._trial_id)
    save_note(handle, trial_note(study, trial, storage_url))  # type: ignore[arg-type]


def save_study_plots(study: optuna.Study, store: FileSystemArtifactStore, note: str) -> list[str]:
    """Draw the front and learning curves, upload them, and store ``note`` with them below.

    The full configuration is uploaded beside them as ``study-config.json``.
    The files of an earlier run are removed first. Returns the plots' artifact
    ids (none without matplotlib or optuna-dashboard, or without complete trials).
    """
    try:
        from optuna_dashboard import save_note

        from fedsearch.report._plots import plot_learning_curves, plot_pairs
    except ImportError:
        return []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    names = study.metric_names or []
    teacher = study.user_attrs.get("teacher")
    front = pareto_trials(study)
    _remove_plots(study, store)
    with tempfile.TemporaryDirectory() as folder:
        reference = teacher_reference(teacher)
        paths = plot_pairs(study, complete, front, names, Path(folder), reference)
        if front:
            paths.append(plot_learning_curves(front, teacher, Path(folder)))
        config = Path(folder) / "study-config.json"  # the user attribute is cut at 1,024 chars
        config.write_text(json.dumps(study.user_attrs.get("config", {}), indent=2) + "\n")
        config_id = upload_artifact(
            artifact_store=store,
            file_path=str(config),
            study_or_trial=study,
            mimetype="application/json",
            encoding="utf-8",
        )
        ids = [
            upload_artifact(
                artifact_store=store,
                file_path=str(path),
                study_or_trial=study,
                mimetype="image/png",
            )
            for path in paths
        ]
    study.set_user_attr(PLOTS_ATTR, [*ids, config_id])
    images = [
        f"![{path.stem}](/artifacts/{study._study_id}/{artifact_id})"
        for path, artifact_id in zip(paths, ids, strict=True)
    ]
    save_note(
        study,
        note + "\n\n## Plots\n\nThe star is the teacher; byte axes are "
        "logarithmic (1 kB = 1000 bytes).\n\n" + "\n\n".join(images),
    )
    return ids


def _remove_plots(study: optuna.Study, store: FileSystemArtifactStore) -> None:
    for artifact_id in study.user_attrs.get(PLOTS_ATTR, []):
        try:
            store.remove(artifact_id)
        except Exception as error:  # already gone: nothing to remove
            _logger.debug("plot %s not removed: %s", artifact_id, error)
        study._storage.set_study_system_attr(
            study._study_id, f"artifacts:{artifact_id}", json.dumps(None)
        )
