"""The readable user attributes of a finished trial."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from fedsearch.artifact import describe_artifact
from fedsearch.search._describe import describe_selection
from fedsearch.search._space import CODEC_SLOTS, Selection, slot_kind
from fedsearch.trial._float_tensors import float32_tensors
from fedsearch.trial._layer_labels import layer_labels
from fedsearch.trial._privacy import privacy_attributes
from fedsearch.trial._reports import middleware_reports
from fedsearch.trial._searched_components import selected_middleware
from fedsearch.trial._secure_attributes import secure_attributes
from fedsearch.trial._student import FROZEN_DOWNLOAD

if TYPE_CHECKING:
    from fedsearch.trial._objective import StudyRuntime, TrialOutcome


def trial_attributes(
    runtime: StudyRuntime, selection: Selection, outcome: TrialOutcome
) -> dict[str, Any]:
    """The readable user attributes of a finished trial."""
    layers = describe_artifact(outcome.artifact)
    elements = sum(math.prod(layer.shape) for layer in layers)
    zeros = sum(layer.sparsity * math.prod(layer.shape) for layer in layers)
    registry = runtime.study.registry
    slots = selection.as_dict()
    plugins = {
        f"{slot}.{choice['name']}": _plugin_label(registry.get(slot_kind(slot), choice["name"]))
        for slot, choice in slots.items()
        if slot not in CODEC_SLOTS
    }
    codecs = {slot: spec.as_list() for slot, spec in runtime.codec_pipelines(selection).items()}
    for slot, stages in codecs.items():
        for stage in stages:
            plugins[f"{slot}.{stage['name']}"] = _plugin_label(registry.get("codec", stage["name"]))
    simulation = outcome.simulation
    attributes: dict[str, Any] = {
        "test_accuracy": outcome.test_accuracy,
        "parameters": outcome.parameters,
        "nonzero_parameters": round(elements - zeros),
        "sparsity": round(zeros / elements, 6) if elements else 0.0,
        "bits": {layer.name: layer.bits for layer in layers},
        "layer_labels": layer_labels(outcome.model),
        "float32_tensors": float32_tensors(outcome.model, layers),
        "layers": [
            {
                "name": layer.name,
                "bits": layer.bits,
                "sparsity": round(layer.sparsity, 6),
                "encoding": layer.encoding,
                "bytes": layer.num_bytes,
            }
            for layer in layers
        ],
        "val_accuracy_history": [record.val_accuracy for record in simulation.history],
        "history": [record.__dict__ for record in simulation.history],
        "uplink_bytes": simulation.uplink_bytes,
        "downlink_bytes": simulation.downlink_bytes,
        "one_time_bytes": outcome.one_time_bytes,
        "teacher_download_bytes": outcome.teacher_download_bytes,
        "teacher_training_bytes": outcome.teacher_training_bytes,
        "frozen_download_bytes": simulation.one_time_by_name.get(FROZEN_DOWNLOAD, 0),
        **privacy_attributes(outcome.privacy),
        **middleware_reports(
            selected_middleware(runtime.study, selection), outcome.model, runtime.data
        ),
        "codecs": codecs,
        "downlink": runtime.study.config.federation.downlink,
        "selection": slots,
        "summary": describe_selection(slots),
        "plugins": plugins,
        "partition": {
            "name": runtime.study.partitioner.name,
            "params": runtime.study.partitioner.params.model_dump(mode="json"),
            **runtime.data.partition_summary(),
        },
    }
    attributes |= secure_attributes(runtime.study, simulation)
    if runtime.teacher is not None:
        attributes["teacher_val_accuracy"] = runtime.teacher.val_accuracy
        attributes["teacher_test_accuracy"] = runtime.teacher.test_accuracy
    return attributes


def _plugin_label(component: Any) -> str:
    version = f"=={component.plugin_version}" if component.plugin_version else ""
    return f"{component.plugin}{version}"
