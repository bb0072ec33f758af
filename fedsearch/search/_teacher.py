"""The study's teacher: trained federatedly once, cached on disk as a float32 artifact."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from fedsearch.artifact import FORMAT_VERSION, ModelSpec
from fedsearch.components import Architecture, Teacher
from fedsearch.federated import (
    FederatedRun,
    RoundCallback,
    accuracy,
    model_weights,
    predict_logits,
    run_federated,
)
from fedsearch.search._model_io import build_artifact, load_model
from fedsearch.search._resolve import ResolvedStudy


def teacher_cache_path(study: ResolvedStudy) -> Path:
    """Where the teacher of ``study`` is cached; the name hashes what determines it."""
    config = study.config
    key = json.dumps(
        {
            "dataset": config.dataset.model_dump(mode="json"),
            "federation": config.federation.model_dump(mode="json"),
            "teacher": config.teacher.model_dump(mode="json") if config.teacher else None,
            "seed": config.seed,
            "format": FORMAT_VERSION,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return study.output_dir / "cache" / f"teacher-{digest}.fsz"


def load_or_train_teacher(
    study: ResolvedStudy, run: FederatedRun, *, on_round: RoundCallback | None = None
) -> Teacher | None:
    """The study's teacher from the cache, training and caching it when absent.

    Returns:
        None when the study has no teacher.
    """
    if study.teacher_architecture is None or study.config.teacher is None:
        return None
    path = teacher_cache_path(study)
    if path.exists():
        data = path.read_bytes()
    else:
        data = _train_teacher(study, run, on_round)
        _write_atomically(path, data)
    model = load_model(data, study.registry)
    data_split = run.data
    return Teacher(
        weights=model_weights(model),
        train_logits=predict_logits(model, data_split.train_inputs),
        val_accuracy=accuracy(model, data_split.val_inputs, data_split.val_labels),
        test_accuracy=accuracy(model, data_split.test_inputs, data_split.test_labels),
        artifact_bytes=len(data),
        model=model,
    )


def _train_teacher(
    study: ResolvedStudy, run: FederatedRun, on_round: RoundCallback | None
) -> bytes:
    teacher = study.config.teacher
    architecture = study.teacher_architecture.build()
    assert isinstance(architecture, Architecture) and teacher is not None
    torch.manual_seed(study.config.seed)
    model = architecture.build(run.data.input_shape, run.data.num_classes)
    result = run_federated(
        model, run, rounds=teacher.rounds, learning_rate=teacher.learning_rate, on_round=on_round
    )
    spec = ModelSpec(
        architecture=architecture.name,
        params=architecture.params.model_dump(mode="json"),
        input_shape=run.data.input_shape,
        num_classes=run.data.num_classes,
        metadata={"role": "teacher"},
    )
    return build_artifact(spec, result.weights)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    temporary.write_bytes(data)
    temporary.replace(path)
