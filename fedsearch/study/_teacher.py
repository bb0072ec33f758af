"""The study's teacher: trained federatedly once, cached as a float32 artifact in the database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy
import torch
from sqlalchemy.pool import NullPool

from fedsearch.artifact import FORMAT_VERSION
from fedsearch.components import FACTORY_ARCHITECTURE, Architecture, Teacher, Weights
from fedsearch.federated import (
    FederatedRun,
    RoundCallback,
    accuracy,
    model_weights,
    predict_logits,
    run_federated,
)
from fedsearch.search._factories import factory_digests
from fedsearch.search._resolve import ResolvedStudy
from fedsearch.study._pretrained import load_pretrained_weights, pretrained_path
from fedsearch.study._storage import StorageLock, ensure_sqlite_folder
from fedsearch.trial._model_io import architecture_spec, build_artifact, load_model

_METADATA = sqlalchemy.MetaData()
TEACHERS = sqlalchemy.Table(
    "fedsearch_teachers",
    _METADATA,
    sqlalchemy.Column("key", sqlalchemy.String(64), primary_key=True),
    sqlalchemy.Column("artifact", sqlalchemy.LargeBinary, nullable=False),
    sqlalchemy.Column("created_at", sqlalchemy.DateTime(timezone=True), nullable=False),
    sqlalchemy.Column("training_bytes", sqlalchemy.BigInteger, nullable=True),
)
"""The teacher cache. ``training_bytes`` is NULL in rows cached before the teacher's
training traffic was recorded: such a teacher is trained again, and its row replaced."""


@dataclass(frozen=True)
class CachedTeacher:
    """A cached teacher: its float32 artifact and what its federated training moved.

    Attributes:
        artifact: The teacher's artifact bytes.
        training_bytes: Bytes its training sent through the channel (both
            directions, every round), as the channel counted them.
    """

    artifact: bytes
    training_bytes: int


def teacher_key(study: ResolvedStudy) -> str:
    """Hash of everything that determines the teacher (data, federation, teacher, seed),
    and the source file of a teacher built by a model factory: edited code trains anew."""
    config = study.config
    architecture = config.teacher.architecture if config.teacher else None
    factory = (
        architecture.params.get("factory")
        if architecture is not None and architecture.name == FACTORY_ARCHITECTURE
        else None
    )
    fields = {
        "dataset": config.dataset.model_dump(mode="json"),
        "federation": config.federation.model_dump(mode="json"),
        "teacher": config.teacher.model_dump(mode="json") if config.teacher else None,
        "seed": config.seed,
        "format": FORMAT_VERSION,
    }
    if factory:
        fields["factory_source"] = factory_digests(study.registry).get(factory)
    key = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def cached_teacher(storage_url: str, key: str) -> CachedTeacher | None:
    """The teacher cached under ``key`` in the study's database, if any.

    A row cached without its training traffic (an older fedsearch) counts as
    absent, so the teacher is trained again and its traffic measured.
    """
    ensure_sqlite_folder(storage_url)
    engine = sqlalchemy.create_engine(storage_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            inspector = sqlalchemy.inspect(connection)
            if not inspector.has_table(TEACHERS.name):
                return None
            columns = {column["name"] for column in inspector.get_columns(TEACHERS.name)}
            if TEACHERS.c.training_bytes.name not in columns:
                return None
            query = sqlalchemy.select(TEACHERS.c.artifact, TEACHERS.c.training_bytes).where(
                TEACHERS.c.key == key
            )
            row = connection.execute(query).one_or_none()
    finally:
        engine.dispose()
    if row is None or row.training_bytes is None:
        return None
    return CachedTeacher(artifact=row.artifact, training_bytes=row.training_bytes)


def _store_teacher(storage_url: str, key: str, teacher: CachedTeacher) -> None:
    """Store ``teacher`` under ``key``, replacing a row cached without its traffic."""
    engine = sqlalchemy.create_engine(storage_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            _METADATA.create_all(connection, tables=[TEACHERS], checkfirst=True)
            columns = sqlalchemy.inspect(connection).get_columns(TEACHERS.name)
            if TEACHERS.c.training_bytes.name not in {column["name"] for column in columns}:
                connection.execute(
                    sqlalchemy.text(f"ALTER TABLE {TEACHERS.name} ADD COLUMN training_bytes BIGINT")
                )
            connection.execute(sqlalchemy.delete(TEACHERS).where(TEACHERS.c.key == key))
            connection.execute(
                sqlalchemy.insert(TEACHERS).values(
                    key=key,
                    artifact=teacher.artifact,
                    created_at=datetime.now(UTC),
                    training_bytes=teacher.training_bytes,
                )
            )
    finally:
        engine.dispose()


def load_or_train_teacher(
    study: ResolvedStudy,
    run: FederatedRun,
    *,
    on_round: RoundCallback | None = None,
    on_training: Callable[[], None] | None = None,
) -> Teacher | None:
    """The study's teacher from the database, training and storing it when absent.

    The teacher is cached in the ``fedsearch_teachers`` table of the study's
    own database, so every worker of the study shares it. A storage lock makes
    sure only one worker trains it; the others wait and then load it.

    Args:
        study: The resolved study.
        run: Data and federation the teacher trains in.
        on_round: Called after each teacher round (when it trains).
        on_training: Called once before this process starts training it.

    Returns:
        None when the study has no teacher.
    """
    if study.teacher_architecture is None or study.config.teacher is None:
        return None
    key = teacher_key(study)
    cached = _pretrained_teacher(study, run) or cached_teacher(study.storage_url, key)
    if cached is None:
        with StorageLock(study.storage_url, f"fedsearch-teacher-{key}"):
            cached = cached_teacher(study.storage_url, key)  # another worker may have trained it
            if cached is None:
                if on_training is not None:
                    on_training()
                cached = _train_teacher(study, run, on_round)
                _store_teacher(study.storage_url, key, cached)
    model = load_model(cached.artifact, study.registry)
    data_split = run.data
    return Teacher(
        weights=model_weights(model),
        train_logits=predict_logits(model, data_split.train_inputs),
        val_accuracy=accuracy(model, data_split.val_inputs, data_split.val_labels),
        test_accuracy=accuracy(model, data_split.test_inputs, data_split.test_labels),
        artifact_bytes=len(cached.artifact),
        model=model,
        training_bytes=cached.training_bytes,
    )


def _pretrained_teacher(study: ResolvedStudy, run: FederatedRun) -> CachedTeacher | None:
    """The teacher given by file, as a float32 artifact; nothing trained it here (0 bytes)."""
    if pretrained_path(study) is None:
        return None
    loaded = load_pretrained_weights(study, run.data.input_shape, run.data.num_classes)
    artifact = _teacher_artifact(
        study, run, loaded.weights, pretrained=True, num_classes=loaded.num_classes
    )
    return CachedTeacher(artifact, training_bytes=0)


def _teacher_artifact(
    study: ResolvedStudy,
    run: FederatedRun,
    weights: Weights,
    *,
    pretrained: bool = False,
    num_classes: int | None = None,
) -> bytes:
    """The teacher's float32 artifact; ``num_classes`` is its head's (default: the dataset's)."""
    architecture = study.teacher_architecture.build()
    metadata = {"role": "teacher", **({"source": "pretrained"} if pretrained else {})}
    classes = num_classes or run.data.num_classes
    spec = architecture_spec(architecture, run.data.input_shape, classes, metadata)
    return build_artifact(spec, weights)


def _train_teacher(
    study: ResolvedStudy, run: FederatedRun, on_round: RoundCallback | None
) -> CachedTeacher:
    teacher = study.config.teacher
    architecture = study.teacher_architecture.build()
    assert isinstance(architecture, Architecture) and teacher is not None
    torch.manual_seed(study.config.seed)
    model = architecture.build(run.data.input_shape, run.data.num_classes)
    result = run_federated(
        model, run, rounds=teacher.rounds, learning_rate=teacher.learning_rate, on_round=on_round
    )
    artifact = _teacher_artifact(study, run, result.weights)
    return CachedTeacher(artifact, training_bytes=result.comm_bytes)
