"""Re-scoring an export: run the file in its runtime on the study's splits.

An export is only worth shipping if it computes what was measured. Each
exported file is run in the runtime it is made for (onnxruntime, TorchScript,
ExecuTorch; the artifact through ``load_model``) on the study's validation and
test splits, rebuilt from the study's stored configuration exactly as the trials
saw them; its accuracies and the largest absolute difference between its
logits and those of the artifact's decoded model are recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn

from fedsearch._errors import ConfigError
from fedsearch.config import StudyConfig
from fedsearch.export import executorch_logits, onnx_logits, torchscript_logits
from fedsearch.federated import FederatedData, predict_logits, prepare_federated_data
from fedsearch.host import ComponentRegistry
from fedsearch.trial._model_io import load_model


@dataclass(frozen=True)
class ExportScore:
    """One exported file, re-scored in its runtime.

    Attributes:
        trial: Trial number.
        format: Export format.
        path: The file written.
        bytes: Its size.
        model_bytes: The trial's artifact size.
        ratio: ``bytes / model_bytes``.
        val_accuracy: Accuracy of the file in its runtime on the validation split.
        test_accuracy: The same on the test split.
        max_difference: Largest absolute difference between its logits and the
            artifact's decoded model's, over both splits.
    """

    trial: int
    format: str
    path: str
    bytes: int
    model_bytes: int
    ratio: float
    val_accuracy: float
    test_accuracy: float
    max_difference: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def study_splits(study: optuna.Study, registry: ComponentRegistry) -> FederatedData:
    """The validation and test splits the study's trials were scored on.

    Raises:
        ConfigError: The study records no configuration (not run by fedsearch).
    """
    stored = study.user_attrs.get("config")
    if stored is None:
        raise ConfigError(
            f"study {study.study_name!r} records no configuration to rebuild its data splits; "
            "re-scoring needs a study run by `fedsearch run`",
            field="--study-name",
        )
    config = StudyConfig.model_validate(stored)
    federation = config.federation
    dataset = registry.create("dataset", config.dataset.name, config.dataset.params, source="study")
    partitioner = registry.create(
        "partitioner", federation.partition.name, federation.partition.params, source="study"
    )
    return prepare_federated_data(
        dataset.load(),
        val_fraction=config.dataset.val_fraction,
        partitioner=partitioner,
        num_clients=federation.num_clients,
        seed=config.seed,
    )


def exported_logits(
    export_format: str, path: Path, inputs: torch.Tensor, registry: ComponentRegistry
) -> np.ndarray:
    """Logits of the exported file at ``path``, run in its own runtime."""
    array = inputs.numpy()
    if export_format == "onnx":
        return onnx_logits(path, array)
    if export_format == "torchscript":
        return torchscript_logits(path, array)
    if export_format == "executorch":
        return executorch_logits(path, array)
    return predict_logits(load_model(path.read_bytes(), registry), inputs).numpy()


def rescore(
    trial: int,
    export_format: str,
    path: Path,
    model: nn.Module,
    model_bytes: int,
    data: FederatedData,
    registry: ComponentRegistry,
) -> ExportScore:
    """Run the exported file on both splits and compare it with ``model`` (the artifact's)."""
    scores, differences = {}, []
    for split, inputs, labels in (
        ("val", data.val_inputs, data.val_labels),
        ("test", data.test_inputs, data.test_labels),
    ):
        logits = exported_logits(export_format, path, inputs, registry)
        reference = predict_logits(model, inputs).numpy()
        differences.append(float(np.abs(logits - reference).max(initial=0.0)))
        scores[split] = int((logits.argmax(axis=1) == labels.numpy()).sum()) / len(labels)
    size = path.stat().st_size
    return ExportScore(
        trial=trial,
        format=export_format,
        path=str(path),
        bytes=size,
        model_bytes=model_bytes,
        ratio=size / model_bytes,
        val_accuracy=scores["val"],
        test_accuracy=scores["test"],
        max_difference=max(differences),
    )
