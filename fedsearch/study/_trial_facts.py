"""What a finished trial measured, in words and units people read (report and dashboard)."""

from __future__ import annotations

from typing import Any

import optuna

from fedsearch._units import format_bytes, format_ratio

OBJECTIVE_LABELS = {
    "val_accuracy": "validation accuracy",
    "model_bytes": "model size",
    "comm_bytes": "communication",
}
"""Labels of the built-in objectives (extra objectives keep their names)."""


def objective_label(name: str) -> str:
    """``model_bytes`` -> ``model size``; unknown names are returned as they are."""
    return OBJECTIVE_LABELS.get(name, name)


def format_objective(name: str, value: float | None) -> str:
    """A value with its unit: bytes as ``1.54 kB``, accuracies with four decimals."""
    if value is None:
        return "-"
    if name.endswith("_bytes"):
        return format_bytes(value)
    return f"{value:.4f}"


def teacher_reference(teacher: dict[str, Any] | None) -> dict[str, float]:
    """The teacher as objective values: accuracy, artifact size, federated training traffic."""
    if not teacher:
        return {}
    return {
        "val_accuracy": teacher["val_accuracy"],
        "model_bytes": teacher["artifact_bytes"],
        "comm_bytes": teacher.get("training_bytes") or 0,
    }


def teacher_ratios(values: dict[str, float], teacher: dict[str, Any] | None) -> dict[str, str]:
    """How a trial compares with the teacher, in words.

    Returns:
        ``accuracy`` (difference in validation accuracy), ``model`` (how many
        times smaller the artifact is), ``comm`` (communication as a multiple of
        the teacher's federated training traffic); empty without a teacher.
    """
    reference = teacher_reference(teacher)
    if not reference:
        return {}
    ratios = {"accuracy": f"{values['val_accuracy'] - reference['val_accuracy']:+.4f}"}
    ratios["model"] = f"{format_ratio(reference['model_bytes'], values['model_bytes'])} smaller"
    if reference["comm_bytes"]:
        shown = format_ratio(values["comm_bytes"], reference["comm_bytes"])
        ratios["comm"] = f"{shown} the teacher's training traffic"
    return ratios


def trial_values(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """The trial's objective values by metric name."""
    names = study.metric_names or list(OBJECTIVE_LABELS)
    return dict(zip(names, trial.values or [], strict=False))


def layer_rows(trial: optuna.trial.FrozenTrial) -> list[dict[str, Any]]:
    """Per stored tensor: readable name, bits, sparsity, encoding and bytes."""
    labels = trial.user_attrs.get("layer_labels", {})
    return [
        {**layer, "label": labels.get(layer["name"], layer["name"])}
        for layer in trial.user_attrs.get("layers", [])
    ]


def bits_summary(trial: optuna.trial.FrozenTrial) -> str:
    """Bits of the weight tensors: ``6``, ``2-8`` when they differ, ``-`` when unknown."""
    layers = trial.user_attrs.get("layers", [])
    weights = [layer["bits"] for layer in layers if not layer["name"].endswith("bias")]
    bits = sorted(set(weights or [layer["bits"] for layer in layers]))
    if not bits:
        return "-"
    return str(bits[0]) if len(bits) == 1 else f"{bits[0]}-{bits[-1]}"


def sparsity_summary(trial: optuna.trial.FrozenTrial) -> str:
    """Share of zero weights in the artifact, as a percentage."""
    sparsity = trial.user_attrs.get("sparsity")
    return "-" if sparsity is None else f"{sparsity:.0%}"


def accuracy_history(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Validation accuracy after each round (rounds without a value left out)."""
    history = trial.user_attrs.get("val_accuracy_history") or []
    return [value for value in history if value is not None]
