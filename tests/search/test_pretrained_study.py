"""``studies/pretrained_lenet.toml``, shrunk: a pretrained LeNet-300-100 from a file."""

from __future__ import annotations

import tomllib

import optuna
import pytest
import torch
from torch import nn

from fedsearch.cli._main import main
from tests._studies import DROP, merged, write_toml
from tests.conftest import REPO, SHARED_DATA

STUDY = REPO / "studies" / "pretrained_lenet.toml"


def pretrained_lenet(registry, path) -> None:
    """LeNet-300-100 after 100 steps on 6,400 MNIST training images: better than chance."""
    splits = registry.create("dataset", "mnist", {"root": str(SHARED_DATA)}).load()
    torch.manual_seed(0)
    model = registry.create("architecture", "lenet_300_100", {}).build((1, 28, 28), 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(100):
        inputs = splits.train_inputs[step * 64 : (step + 1) * 64]
        labels = splits.train_labels[step * 64 : (step + 1) * 64]
        loss = nn.functional.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.save(model.state_dict(), path)


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="shared MNIST not present")
def test_the_pretrained_study_runs_and_charges_the_teacher_its_download_only(
    tmp_path, capsys, registry
):
    pretrained_lenet(registry, tmp_path / "lenet.pt")
    study = tomllib.loads(STUDY.read_text())
    tiny = merged(
        study,
        {
            "output_dir": (tmp_path / "runs").as_posix(),
            "dataset": {"params": {"root": str(SHARED_DATA)}},
            "federation": {"rounds": 2, "fraction": 0.02},
            "teacher": {"pretrained": "lenet.pt"},
            "search": {
                "space": (REPO / "search_spaces" / "default.toml").as_posix(),
                "n_trials": 3,
                "sampler": {"name": "random", "params": DROP},
                "constraints": {"min_accuracy": 0.1},
                "slots": {"architecture": ["from_teacher"]},  # the mix: test_pretrained_teacher
            },
        },
    )
    path = write_toml(tmp_path / "study.toml", tiny)
    assert main(["run", str(path)]) == 0, capsys.readouterr().err
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    loaded = optuna.load_study(study_name="pretrained_lenet", storage=storage)
    teacher = loaded.user_attrs["teacher"]
    assert teacher["training_bytes"] == 0 and teacher["pretrained"] == "lenet.pt"
    assert teacher["val_accuracy"] > 0.8  # the file's model, measured on the validation split
    trials = loaded.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == 3
    for trial in trials:
        assert trial.user_attrs["teacher_training_bytes"] == 0
        assert trial.user_attrs["teacher_val_accuracy"] == teacher["val_accuracy"]
    for trial in trials:  # students from the pretrained model keep most of its accuracy
        assert trial.user_attrs["selection"]["architecture"]["name"] == "from_teacher"
        assert trial.values[0] > 0.5
