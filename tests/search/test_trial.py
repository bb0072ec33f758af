"""One trial end to end: deterministic, honest bytes, artifacts that reproduce accuracy."""

from __future__ import annotations

import pytest
import sqlalchemy

from fedsearch import evaluate_selection, load_model, resolve_study
from fedsearch.federated import accuracy
from fedsearch.search import ComponentChoice, Selection
from fedsearch.study import load_or_train_teacher, prepare_runtime
from fedsearch.study._storage import ensure_sqlite_folder
from fedsearch.study._teacher import cached_teacher, teacher_key
from fedsearch.trial._trial_attributes import trial_attributes


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, registry):
    from tests.conftest import write_tiny_study

    study = resolve_study(write_tiny_study(tmp_path_factory.mktemp("trial")), registry)
    return prepare_runtime(study)


def selection(*compressors: tuple[str, str, dict]) -> Selection:
    return Selection(
        ComponentChoice("mlp", {"depth": 1, "widths": [16]}),
        {slot: ComponentChoice(name, params) for slot, name, params in compressors},
    )


COMPRESSED = selection(
    ("prune", "magnitude", {"sparsity": 0.6, "start_fraction": 0.5}),
    ("quantize", "uniform", {"bits": 4}),
    ("distill", "soft_target", {"temperature": 3.0, "alpha": 0.5}),
)
COMPRESSED_WITHOUT_TEACHER = selection(
    ("prune", "magnitude", {"sparsity": 0.6, "start_fraction": 0.5}),
    ("quantize", "uniform", {"bits": 4}),
)


def test_same_selection_same_objectives(runtime):
    first = evaluate_selection(runtime, COMPRESSED)
    second = evaluate_selection(runtime, COMPRESSED)
    assert first.artifact == second.artifact
    assert (first.val_accuracy, first.comm_bytes) == (second.val_accuracy, second.comm_bytes)


def test_loading_the_artifact_reproduces_the_recorded_accuracy(runtime, registry):
    outcome = evaluate_selection(runtime, COMPRESSED)
    model = load_model(outcome.artifact, registry)
    data = runtime.data
    assert accuracy(model, data.val_inputs, data.val_labels) == outcome.val_accuracy
    assert accuracy(model, data.test_inputs, data.test_labels) == outcome.test_accuracy
    assert outcome.val_accuracy > 0.3  # well above chance (0.1) after 3 tiny rounds


def test_model_bytes_shrink_with_compression(runtime):
    dense = evaluate_selection(runtime, selection())
    compressed = evaluate_selection(runtime, COMPRESSED)
    params = 64 * 16 + 16 + 16 * 10 + 10
    # float32 plus a small header; entropy coding may save a little
    assert params * 4 * 0.85 < dense.model_bytes < params * 4 + 200
    assert compressed.model_bytes < dense.model_bytes / 3


def test_comm_bytes_are_every_payload_of_every_round(runtime):
    outcome = evaluate_selection(runtime, selection())
    config = runtime.study.config.federation
    params = 64 * 16 + 16 + 16 * 10 + 10
    per_round = round(config.fraction * config.num_clients)
    payload = 1 + 2 + params * 4  # float32 payload: tag byte, 2-byte varint count, values
    expected = 2 * config.rounds * per_round * payload  # down and up
    assert outcome.simulation.one_time_bytes == 0
    assert outcome.comm_bytes == expected
    assert sum(r.uplink_bytes + r.downlink_bytes for r in outcome.simulation.history) == expected


DISTILLED = selection(("distill", "soft_target", {"temperature": 2.0, "alpha": 0.5}))


def test_distillation_pays_for_the_teacher_download_once_per_client(runtime):
    plain = evaluate_selection(runtime, selection())
    distilled = evaluate_selection(runtime, DISTILLED)
    teacher_bytes = sum(t.numel() for t in runtime.teacher.weights.values()) * 4
    download = distilled.simulation.one_time_bytes
    assert distilled.teacher_download_bytes == download
    assert download % teacher_bytes == 0
    assert 1 <= download // teacher_bytes <= runtime.study.config.federation.num_clients
    assert distilled.comm_bytes == plain.comm_bytes + download + runtime.teacher.training_bytes


def test_teacher_record_holds_the_traffic_of_its_federated_training(runtime):
    study = runtime.study
    cached = cached_teacher(study.storage_url, teacher_key(study))
    federation, teacher = study.config.federation, study.config.teacher
    params = 64 * 32 + 32 + 32 * 10 + 10  # the tiny study's teacher: MLP 64-32-10
    payload = 1 + 2 + params * 4  # float32 payload: tag byte, 2-byte varint count, values
    clients = round(federation.fraction * federation.num_clients)
    assert cached.training_bytes == 2 * teacher.rounds * clients * payload  # down and up
    assert runtime.teacher.training_bytes == cached.training_bytes


def test_a_distilled_trial_is_charged_the_teachers_training_traffic(runtime):
    cached = cached_teacher(runtime.study.storage_url, teacher_key(runtime.study))
    outcome = evaluate_selection(runtime, DISTILLED)
    simulation = outcome.simulation
    own = sum(r.uplink_bytes + r.downlink_bytes for r in simulation.history)
    assert own == simulation.uplink_bytes + simulation.downlink_bytes > 0
    assert outcome.teacher_training_bytes == cached.training_bytes > 0
    assert outcome.one_time_bytes == simulation.one_time_bytes + cached.training_bytes
    assert outcome.comm_bytes == own + outcome.teacher_download_bytes + cached.training_bytes
    attributes = trial_attributes(runtime, DISTILLED, outcome)
    assert attributes["teacher_training_bytes"] == cached.training_bytes
    assert attributes["teacher_download_bytes"] == simulation.one_time_bytes > 0
    assert attributes["one_time_bytes"] == outcome.comm_bytes - own


def test_a_trial_without_the_teacher_is_not_charged_for_it(runtime):
    outcome = evaluate_selection(runtime, COMPRESSED_WITHOUT_TEACHER)
    attributes = trial_attributes(runtime, COMPRESSED_WITHOUT_TEACHER, outcome)
    assert attributes["teacher_training_bytes"] == attributes["teacher_download_bytes"] == 0
    assert outcome.comm_bytes == outcome.simulation.uplink_bytes + outcome.simulation.downlink_bytes


def test_teacher_is_cached_in_the_database_and_reused(runtime):
    study = runtime.study
    cached = cached_teacher(study.storage_url, teacher_key(study))
    assert cached is not None
    rounds = []
    again = load_or_train_teacher(study, runtime.federated_run(), on_round=rounds.append)
    assert rounds == []  # loaded, not trained again
    assert again.val_accuracy == runtime.teacher.val_accuracy
    assert again.artifact_bytes == len(cached.artifact) == runtime.teacher.artifact_bytes
    assert again.training_bytes == cached.training_bytes


def test_a_teacher_cached_without_its_traffic_is_trained_again(tmp_path, registry, runtime):
    from tests.conftest import write_tiny_study

    study = resolve_study(write_tiny_study(tmp_path), registry)
    key = teacher_key(study)
    ensure_sqlite_folder(study.storage_url)
    engine = sqlalchemy.create_engine(study.storage_url)
    with engine.begin() as connection:  # the table as fedsearch created it before this column
        connection.execute(
            sqlalchemy.text(
                "CREATE TABLE fedsearch_teachers (key VARCHAR(64) PRIMARY KEY, "
                "artifact BLOB NOT NULL, created_at DATETIME NOT NULL)"
            )
        )
        connection.execute(
            sqlalchemy.text("INSERT INTO fedsearch_teachers VALUES (:key, :artifact, :now)"),
            {"key": key, "artifact": b"old", "now": "2026-11-01 00:00:00"},
        )
    engine.dispose()
    assert cached_teacher(study.storage_url, key) is None
    rounds = []
    teacher = load_or_train_teacher(study, runtime.federated_run(), on_round=rounds.append)
    assert len(rounds) == study.config.teacher.rounds  # trained again, traffic measured
    assert teacher.training_bytes == runtime.teacher.training_bytes
    migrated = cached_teacher(study.storage_url, key)
    assert migrated.training_bytes == teacher.training_bytes
    assert len(migrated.artifact) == teacher.artifact_bytes


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_asymmetric_quantization_trains_an_mlp_trial_under_vmap(runtime, granularity):
    """MLP trials auto-vectorize; the asymmetric quantizer must be vmap-safe (issue 11)."""
    quantize = {"bits": 4, "scheme": "asymmetric", "granularity": granularity}
    outcome = evaluate_selection(runtime, selection(("quantize", "uniform", quantize)))
    assert {record.execution for record in outcome.simulation.history} == {"vectorized"}
    assert outcome.val_accuracy > 0.3
