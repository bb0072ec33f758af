"""What every export records about itself: study, trial, inputs, classes, accuracies."""

from __future__ import annotations

import json

import optuna

from fedsearch.artifact import ModelSpec
from fedsearch.host import ComponentRegistry

METADATA_PREFIX = "fedsearch."


def _preprocessing(study: optuna.Study, registry: ComponentRegistry) -> tuple[str, list[str]]:
    """How inputs are prepared (the dataset's own description) and its class names, if known."""
    dataset = study.user_attrs.get("config", {}).get("dataset", {})
    name = dataset.get("name")
    if name is None:
        return "unknown: the study records no dataset", []
    component = registry.create("dataset", name, dataset.get("params", {}), source="study")
    summary = (type(component).__doc__ or "").strip().splitlines()[0]
    text = (
        f"dataset {name!r} ({summary}); float32, channels first, "
        "normalised as the dataset plugin loads it"
    )
    return text, list(component.class_names)


def export_metadata(
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    spec: ModelSpec,
    registry: ComponentRegistry,
) -> dict[str, str]:
    """String pairs an export carries (ONNX ``metadata_props``, TorchScript extra file).

    Keys start with ``fedsearch.``: ``version``, ``study``, ``trial``,
    ``selection`` (the trial's one-line summary), ``input_shape`` (JSON, one
    example), ``preprocessing``, ``num_classes``, ``class_names`` (JSON, empty
    when the dataset does not name them), ``val_accuracy``, ``test_accuracy``
    and ``model_bytes`` (the artifact's length).
    """
    from fedsearch import __version__

    preprocessing, class_names = _preprocessing(study, registry)
    values = {
        "version": __version__,
        "study": study.study_name,
        "trial": str(trial.number),
        "selection": str(trial.user_attrs.get("summary", "")),
        "input_shape": json.dumps(list(spec.input_shape)),
        "preprocessing": preprocessing,
        "num_classes": str(spec.num_classes),
        "class_names": json.dumps(class_names),
        "val_accuracy": repr(trial.values[0]),
        "test_accuracy": repr(trial.user_attrs.get("test_accuracy")),
        "model_bytes": str(int(trial.values[1])),
    }
    return {METADATA_PREFIX + key: value for key, value in values.items()}
