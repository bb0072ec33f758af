"""Transfer with a new head onto a task with another number of classes; frozen layers searched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from fedsearch import evaluate_selection, resolve_study
from fedsearch.cli._main import main
from fedsearch.federated import accuracy
from fedsearch.report._html import _teacher_paragraph
from fedsearch.search import ComponentChoice, Selection
from fedsearch.study import prepare_runtime
from fedsearch.trial._student import FROZEN_DOWNLOAD, build_student
from tests._studies import DROP, tiny_space, tiny_study, write_study

WIDE = {"name": "mlp", "params": {"widths": [32]}}
DEEP = {"name": "mlp", "params": {"depth": 2, "widths": [32, 16]}}
TRANSFER = {  # every from_teacher student gets a new head; nothing distils
    "slots": {"architecture": ["from_teacher"], "distill": ["none"]},
    "dimensions": {"architecture.from_teacher.new_head": {"value": True}},
}


def train_centrally(registry, architecture: dict, inputs, labels, classes: int) -> nn.Module:
    """``architecture`` for ``classes`` classes, trained on ``inputs``, ``labels`` (150 steps)."""
    torch.manual_seed(1)
    model = registry.create("architecture", architecture["name"], architecture["params"]).build(
        tuple(inputs.shape[1:]), classes
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(1)
    for _ in range(150):
        batch = torch.randint(len(labels), (64,), generator=generator)
        loss = nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits(registry):
    return registry.create("dataset", "digits", {}).load()


@pytest.fixture(scope="module")
def five_classes(tmp_path_factory, digits) -> dict:
    """The digits 0-4 as an own-data ``.npz`` dataset (5 classes), train and test files."""
    folder = tmp_path_factory.mktemp("five")
    paths = {}
    for split, x, y in (
        ("path", digits.train_inputs, digits.train_labels),
        ("test_path", digits.test_inputs, digits.test_labels),
    ):
        keep = y < 5
        paths[split] = str(folder / f"{split}.npz")
        np.savez(paths[split], x=x[keep].numpy(), y=y[keep].numpy())
    return {"name": "npz", "params": paths}


def transfer_study(folder: Path, model: nn.Module, dataset: dict, space: dict, **changes) -> Path:
    torch.save(model.state_dict(), folder / "teacher.pt")
    teacher = {"architecture": WIDE, "pretrained": "teacher.pt", "rounds": DROP}
    study = tiny_study(teacher=teacher, dataset={"name": DROP, "params": DROP} | dataset, **changes)
    return write_study(folder, study, tiny_space(**space))


def frozen_head(frozen: int) -> Selection:
    return Selection(ComponentChoice("from_teacher", {"new_head": True, "frozen": frozen}), {})


@pytest.mark.parametrize("direction", ["10 classes onto 5", "5 classes onto 10"])
def test_a_new_head_transfers_onto_another_number_of_classes(
    tmp_path, registry, digits, five_classes, direction
):
    if direction == "10 classes onto 5":
        inputs, labels, classes, dataset, task_classes = (
            digits.train_inputs, digits.train_labels, 10, five_classes, 5
        )  # fmt: skip
    else:
        keep = digits.train_labels < 5
        inputs, labels, classes, task_classes = (
            digits.train_inputs[keep], digits.train_labels[keep], 5, 10
        )  # fmt: skip
        dataset = {"name": "digits"}
    pretrained = train_centrally(registry, WIDE, inputs, labels, classes)
    path = transfer_study(tmp_path, pretrained, dataset, TRANSFER)
    runtime = prepare_runtime(resolve_study(path, registry))
    data, teacher = runtime.data, runtime.teacher
    assert data.num_classes == task_classes
    assert teacher.weights["3.weight"].shape == (classes, 32)  # the file's own head
    assert teacher.training_bytes == 0
    # before training: every layer but the head is the file's, the head is the task's
    student = build_student(runtime.study, data, teacher, frozen_head(1).architecture)
    state = student.model.state_dict()
    for name in ("1.weight", "1.bias"):
        assert torch.equal(state[name], pretrained.state_dict()[name])
    assert state["3.weight"].shape == (task_classes, 32)
    assert student.frozen == ("1.weight", "1.bias")
    outcome = evaluate_selection(runtime, frozen_head(1))
    model = outcome.model
    assert model(data.val_inputs[:3]).shape == (3, task_classes)
    assert torch.equal(model[1].weight, pretrained[1].weight)  # frozen: never trained
    assert outcome.val_accuracy == accuracy(model, data.val_inputs, data.val_labels)
    assert outcome.val_accuracy > 0.6  # the new head learnt on the pretrained features
    assert outcome.simulation.one_time_by_name[FROZEN_DOWNLOAD] > 0


@pytest.fixture(scope="module")
def pretrained10(registry, digits) -> nn.Module:
    return train_centrally(registry, WIDE, digits.train_inputs, digits.train_labels, 10)


REFUSED = {
    "no new head": (
        {"slots": TRANSFER["slots"]},
        ["classifies 10 classes and the dataset has 5", '"architecture.from_teacher.new_head"'],
    ),
    "searched new head": (
        {
            "slots": TRANSFER["slots"],
            "dimensions": {"architecture.from_teacher.new_head": {"choices": [False, True]}},
        },
        ["classifies 10 classes and the dataset has 5", "{ value = true }"],
    ),
    "distillation": (
        {**TRANSFER, "slots": {"architecture": ["from_teacher", "mlp"]}},
        ["distilling from it needs the same classes", 'slots.distill = ["none"]'],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_other_classes_without_a_fixed_new_head_are_one_line_exit_2_and_nothing_stored(
    tmp_path, capsys, pretrained10, five_classes, case
):
    space, fragments = REFUSED[case]
    path = transfer_study(tmp_path, pretrained10, five_classes, space)
    code = main(["run", str(path)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "teacher.pretrained" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    database = tmp_path / "runs" / "fedsearch.db"
    assert not database.exists() or database.stat().st_size == 0


def test_other_layers_that_differ_keep_the_strict_error(tmp_path, capsys, registry, five_classes):
    narrow = registry.create("architecture", "mlp", {"widths": [16]}).build((1, 8, 8), 10)
    path = transfer_study(tmp_path, narrow, five_classes, TRANSFER)
    assert main(["run", str(path)]) == 2
    line = capsys.readouterr().err.strip()
    assert "does not fit the teacher's architecture 'mlp'" in line
    assert "wrong shape 1.bias (16,) (expected (32,))" in line


@pytest.fixture(scope="module")
def deep(registry, digits) -> nn.Module:
    """A 3-layer MLP (64-32-16-10) pretrained on the digits."""
    return train_centrally(registry, DEEP, digits.train_inputs, digits.train_labels, 10)


def frozen_study(folder: Path, model: nn.Module, high: int, n_trials: int) -> Path:
    torch.save(model.state_dict(), folder / "teacher.pt")
    teacher = {"architecture": DEEP, "pretrained": "teacher.pt", "rounds": DROP}
    space = tiny_space(
        slots={"architecture": ["from_teacher"], "distill": ["none"], "quantize": ["none"]},
        dimensions={"architecture.from_teacher.frozen": {"low": 1, "high": high}},
    )
    study = tiny_study(teacher=teacher, search={"n_trials": n_trials})
    return write_study(folder, study, space)


def test_frozen_layers_are_searched_and_each_trial_is_charged_its_own(tmp_path, capsys, deep):
    path = frozen_study(tmp_path, deep, high=2, n_trials=4)
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    # the console says where the teacher came from
    assert f"teacher (loaded from the pretrained file {tmp_path / 'teacher.pt'}): " in out
    assert "teacher (cached)" not in out
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert [trial.state.name for trial in trials] == ["COMPLETE"] * 4
    by_frozen = {trial.params["architecture.from_teacher.frozen"]: trial for trial in trials}
    assert sorted(by_frozen) == [1, 2]  # the sampler tried both counts
    # each layer's float32 values, from the pretrained file (not from the channel)
    sizes = [4 * (deep[index].weight.numel() + deep[index].bias.numel()) for index in (1, 3, 5)]
    attrs = {frozen: trial.user_attrs for frozen, trial in by_frozen.items()}
    downloads = {frozen: attrs[frozen]["frozen_download_bytes"] for frozen in (1, 2)}
    clients = downloads[1] // sizes[0]  # the clients that took part (each downloads once)
    assert 1 <= clients <= 4
    for frozen in (1, 2):
        assert attrs[frozen]["one_time_bytes"] == downloads[frozen]  # nothing else moved once
        overhead = downloads[frozen] - clients * sum(sizes[:frozen])
        assert 0 <= overhead < clients * 64  # the frozen layers' values plus small headers
    assert downloads[2] - downloads[1] >= clients * sizes[1]
    # the second layer, frozen, no longer travels in the rounds: the uplink shrank by it
    saved = attrs[1]["uplink_bytes"] - attrs[2]["uplink_bytes"]
    rounds, clients_a_round = 3, 2
    assert rounds * clients_a_round * sizes[1] <= saved < rounds * clients_a_round * (sizes[1] + 64)


def test_a_frozen_range_over_every_layer_is_refused_before_anything_is_stored(
    tmp_path, capsys, deep
):
    path = frozen_study(tmp_path, deep, high=3, n_trials=1)
    assert main(["run", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "dimensions.architecture.from_teacher.frozen" in lines[0]
    assert "up to 3 layers, but the teacher has 3" in lines[0]
    assert "keep frozen at most 2" in lines[0]
    database = tmp_path / "runs" / "fedsearch.db"
    assert not database.exists() or database.stat().st_size == 0


def test_the_report_says_the_teacher_was_loaded_from_its_file():
    summary = {"val_accuracy": 0.9, "test_accuracy": 0.8, "artifact_bytes": 9000}
    paragraph = _teacher_paragraph(summary | {"training_bytes": 0, "pretrained": "t<1>.pt"})
    assert paragraph.startswith("<p>Teacher (loaded from the pretrained file t&lt;1&gt;.pt): ")
    trained = _teacher_paragraph(summary | {"training_bytes": 5000, "pretrained": None})
    assert trained.startswith("<p>Teacher: validation accuracy 0.9000")
