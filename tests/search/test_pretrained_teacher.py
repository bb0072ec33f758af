"""A pretrained teacher given by file, and students that start from the teacher."""

from __future__ import annotations

import optuna
import pytest
import torch
from torch import nn

from fedsearch import build_artifact, evaluate_selection, load_model, resolve_study
from fedsearch.artifact import ModelSpec
from fedsearch.cli._main import main
from fedsearch.federated import accuracy, prepare_federated_data
from fedsearch.search import ComponentChoice, Selection
from fedsearch.study import prepare_runtime
from fedsearch.trial._objective import trial_attributes
from fedsearch.trial._rungs import RungProbe, RungPruning
from fedsearch.trial._student import FROZEN_DOWNLOAD
from tests._studies import DROP, tiny_space, tiny_study, write_study

TEACHER = {"name": "mlp", "params": {"widths": [32]}}


def train_centrally(registry, steps: int = 150) -> nn.Module:
    """The teacher's architecture (MLP 64-32-10) trained on the digits training part."""
    splits = registry.create("dataset", "digits", {}).load()
    data = prepare_federated_data(
        splits,
        val_fraction=0.2,
        partitioner=registry.create("partitioner", "iid", {}),
        num_clients=4,
        seed=0,
    )
    torch.manual_seed(1)
    model = registry.create("architecture", "mlp", TEACHER["params"]).build(data.input_shape, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        batch = torch.randint(len(data.train_labels), (64,), generator=generator)
        loss = nn.functional.cross_entropy(
            model(data.train_inputs[batch]), data.train_labels[batch]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def pretrained(registry):
    return train_centrally(registry)


def pretrained_study(folder, weights: str = "teacher.pt", **changes):
    teacher = {"architecture": TEACHER, "pretrained": weights, "rounds": DROP}
    return write_study(folder, tiny_study(teacher=teacher, **changes))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, registry, pretrained):
    folder = tmp_path_factory.mktemp("pretrained")
    torch.save(pretrained.state_dict(), folder / "teacher.pt")
    return prepare_runtime(resolve_study(pretrained_study(folder), registry))


def selection(architecture: ComponentChoice, *compressors: tuple[str, str, dict]) -> Selection:
    return Selection(
        architecture, {slot: ComponentChoice(name, params) for slot, name, params in compressors}
    )


SMALL = ComponentChoice("mlp", {"depth": 1, "widths": [16]})
DISTILLED = selection(SMALL, ("distill", "soft_target", {"temperature": 2.0, "alpha": 0.5}))
FROM_TEACHER = ComponentChoice("from_teacher", {})


def test_the_teacher_is_the_files_model_measured_on_validation_and_test(runtime, pretrained):
    data, teacher = runtime.data, runtime.teacher
    assert teacher.training_bytes == 0  # nothing trained it in the federation
    assert teacher.val_accuracy == accuracy(pretrained, data.val_inputs, data.val_labels) > 0.85
    assert teacher.test_accuracy == accuracy(pretrained, data.test_inputs, data.test_labels)
    for name, tensor in pretrained.state_dict().items():
        assert torch.equal(teacher.weights[name], tensor)


def test_a_distilled_trial_is_charged_the_pretrained_teachers_download_only(runtime):
    outcome = evaluate_selection(runtime, DISTILLED)
    simulation = outcome.simulation
    own = simulation.uplink_bytes + simulation.downlink_bytes
    params = 64 * 32 + 32 + 32 * 10 + 10
    assert outcome.teacher_training_bytes == 0
    assert outcome.teacher_download_bytes > 0
    assert outcome.teacher_download_bytes % (params * 4) < 16 * 4  # whole payloads, per client
    assert outcome.comm_bytes == own + outcome.teacher_download_bytes
    attributes = trial_attributes(runtime, DISTILLED, outcome)
    assert attributes["teacher_training_bytes"] == 0
    assert attributes["teacher_val_accuracy"] == runtime.teacher.val_accuracy


def test_a_fedsearch_artifact_is_a_teacher_too(tmp_path, registry, pretrained, runtime):
    spec = ModelSpec("mlp", TEACHER["params"], runtime.data.input_shape, 10)
    (tmp_path / "teacher.fsz").write_bytes(build_artifact(spec, pretrained.state_dict()))
    study = resolve_study(pretrained_study(tmp_path, "teacher.fsz"), registry)
    teacher = prepare_runtime(study).teacher
    assert teacher.val_accuracy == runtime.teacher.val_accuracy
    assert teacher.training_bytes == 0


def test_the_student_from_the_teacher_starts_at_the_teachers_accuracy(runtime):
    # one round at a tiny learning rate: the first evaluation is still the teacher's model
    study = runtime.study
    tiny = study.config.federation.model_copy(update={"learning_rate": 1e-6, "rounds": 1})
    config = study.config.model_copy(update={"federation": tiny})
    from dataclasses import replace

    still = replace(runtime, study=replace(study, config=config))
    outcome = evaluate_selection(still, selection(FROM_TEACHER))
    assert abs(outcome.val_accuracy - runtime.teacher.val_accuracy) < 0.02
    # the first round's downlink is the teacher's weights, sent like any global model
    params = 64 * 32 + 32 + 32 * 10 + 10
    clients = round(tiny.fraction * tiny.num_clients)
    assert outcome.simulation.downlink_bytes == clients * (1 + 2 + params * 4)
    assert outcome.teacher_training_bytes == 0


def test_pruned_quantized_and_factorized_students_from_the_teacher(runtime, registry):
    for compressors in (
        [("prune", "magnitude", {"sparsity": 0.7, "start_fraction": 0.0})],
        [("prune", "structured", {"sparsity": 0.5, "start_fraction": 0.0})],
        [("factorize", "svd", {"rank_ratio": 0.5, "start_fraction": 0.0})],
    ):
        chosen = selection(FROM_TEACHER, *compressors, ("quantize", "uniform", {"bits": 4}))
        outcome = evaluate_selection(runtime, chosen)
        assert outcome.val_accuracy > 0.7, compressors  # it kept most of what the teacher knew
        model = load_model(outcome.artifact, registry)
        data = runtime.data
        assert accuracy(model, data.val_inputs, data.val_labels) == outcome.val_accuracy
        assert outcome.model_bytes < runtime.teacher.artifact_bytes / 3


def test_frozen_layers_stay_and_travel_once(runtime, registry):
    frozen = selection(ComponentChoice("from_teacher", {"frozen": 1}))
    moving = evaluate_selection(runtime, selection(FROM_TEACHER))
    outcome = evaluate_selection(runtime, frozen)
    model = load_model(outcome.artifact, registry)
    assert torch.equal(model[1].weight, runtime.teacher.weights["1.weight"])  # never trained
    assert not torch.equal(model[3].weight, runtime.teacher.weights["3.weight"])
    layer = (64 * 32 + 32) * 4
    clients = outcome.simulation.history[0]
    assert clients.uplink_bytes < moving.simulation.history[0].uplink_bytes - layer * 0.9
    download = outcome.simulation.one_time_by_name[FROZEN_DOWNLOAD]
    assert download > 0 and download % layer < 64  # the frozen layer, once per client


def test_a_new_head_starts_the_classifier_afresh(runtime):
    outcome = evaluate_selection(
        runtime, selection(ComponentChoice("from_teacher", {"new_head": True, "frozen": 1}))
    )
    assert outcome.val_accuracy > 0.5  # the head learnt on the frozen features


def test_a_study_mixes_students_from_the_teacher_with_small_ones(tmp_path, capsys, pretrained):
    torch.save(pretrained.state_dict(), tmp_path / "teacher.pt")
    space = tiny_space(
        slots={"architecture": ["from_teacher", "mlp"], "distill": ["none", "soft_target"]}
    )
    teacher = {"architecture": TEACHER, "pretrained": "teacher.pt", "rounds": DROP}
    study = write_study(tmp_path, tiny_study(teacher=teacher, search={"n_trials": 4}), space)
    assert main(["run", str(study)]) == 0
    capsys.readouterr()
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert [trial.state.name for trial in trials] == ["COMPLETE"] * 4
    for trial in trials:
        attrs = trial.user_attrs
        assert attrs["teacher_training_bytes"] == 0  # pretrained: its download only
        distilled = "distill" in attrs["selection"]
        assert (attrs["teacher_download_bytes"] > 0) == distilled


BAD_FILES = {
    "missing": (None, ["does not exist", "teacher.pretrained"]),
    "not a state dict": (b"hello, not a pickle", ["neither a PyTorch state dict"]),
    "wrong keys": ({"weight": torch.zeros(3)}, ["missing 1.bias", "unexpected weight"]),
    "wrong shapes": (
        "shapes",
        ["wrong shape 1.bias (16,) (expected (32,)), 1.weight (16, 64) (expected (32, 64))"],
    ),
    "a list": ([torch.zeros(2)], ["holds a list"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_pretrained_file_is_one_line_exit_2_and_nothing_stored(
    tmp_path, capsys, case, registry
):
    content, expected = BAD_FILES[case]
    path = tmp_path / "teacher.pt"
    if content == "shapes":
        model = registry.create("architecture", "mlp", {"widths": [16]}).build((1, 8, 8), 10)
        torch.save(model.state_dict(), path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    study = pretrained_study(tmp_path)
    code = main(["run", str(study)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in expected:
        assert fragment in lines[0], lines[0]
    database = tmp_path / "runs" / "fedsearch.db"
    assert not database.exists() or database.stat().st_size == 0


def test_a_pretrained_teacher_is_not_trained(tmp_path, capsys):
    study = write_study(
        tmp_path, tiny_study(teacher={"architecture": TEACHER, "pretrained": "t.pt", "rounds": 2})
    )
    code = main(["run", str(study)])
    err = capsys.readouterr().err
    assert code == 2 and "remove rounds and learning_rate" in err


def test_from_teacher_needs_a_teacher(tmp_path, capsys):
    space = tiny_space(slots={"architecture": ["from_teacher"], "distill": ["none"]})
    study = write_study(tmp_path, tiny_study(teacher=DROP), space)
    code = main(["run", str(study)])
    err = capsys.readouterr().err
    assert code == 2 and "from_teacher student starts from the teacher" in err


def test_other_weights_are_another_study(tmp_path, registry, pretrained):
    torch.save(pretrained.state_dict(), tmp_path / "teacher.pt")
    path = pretrained_study(tmp_path)
    first = resolve_study(path, registry).fingerprint()
    assert resolve_study(path, registry).fingerprint() == first
    torch.save({k: v + 1 for k, v in pretrained.state_dict().items()}, tmp_path / "teacher.pt")
    assert resolve_study(path, registry).fingerprint() != first


@pytest.mark.parametrize("compressors", [(), (("quantize", "uniform", {"bits": 4}),)])
def test_a_frozen_students_rung_points_measure_what_it_ships_and_sends(runtime, compressors):
    probe = RungProbe()
    rounds = runtime.study.config.federation.rounds
    pruning = RungPruning(None, optuna.create_study().ask(), rounds, probe)
    sizes, history = [], []

    def on_round(record):
        history.append(record)
        pruning.after_round(record, history)
        sizes.append(probe.model_bytes(record.round - 1))

    frozen = selection(ComponentChoice("from_teacher", {"frozen": 1}), *compressors)
    outcome = evaluate_selection(runtime, frozen, on_round=on_round, probe=probe)
    assert len(sizes) == rounds and sizes[-1] == outcome.model_bytes
    assert outcome.simulation.one_time_by_name[FROZEN_DOWNLOAD] > 0
    assert pruning.comm_bytes + probe.extra_one_time_bytes == outcome.comm_bytes
    unmeasured = evaluate_selection(runtime, frozen)  # thawing to measure changed nothing
    assert unmeasured.artifact == outcome.artifact
    assert unmeasured.val_accuracy == outcome.val_accuracy
