"""Your own architecture without a plugin: ``factory`` models from a file beside the study."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn

from fedsearch import (
    ArtifactError,
    ConfigError,
    ModelSpec,
    build_artifact,
    get_registry,
    load_model,
    resolve_study,
    with_factories,
)
from fedsearch.cli._main import main
from fedsearch.study._teacher import teacher_key
from tests.conftest import TINY_STUDY, write_tiny_study

RESIDUAL_CNN = '''
import torch
from torch import nn


class Residual(nn.Module):
    """conv-BN-ReLU, depthwise conv-BN, plus the input."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


def build(input_shape, num_classes, width=8):
    return nn.Sequential(
        nn.Conv2d(input_shape[0], width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        Residual(width),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * width, num_classes),
    )
'''

SPACE = """
[slots]
architecture = ["factory"]
prune = ["magnitude"]
quantize = ["uniform"]

[dimensions]
"architecture.factory.factory" = { value = "my_models:build" }
"architecture.factory.kwargs" = { value = { width = 6 } }
"prune.magnitude.sparsity" = { value = 0.5 }
"quantize.uniform.bits" = { value = 6 }
"""

TEACHER = 'architecture = { name = "factory", params = { factory = "my_models:build" } }'


def own_model_study(
    folder: Path, models: str = RESIDUAL_CNN, space: str = SPACE, *, teacher: bool = True
) -> Path:
    """A tiny digits study whose students (and teacher) come from ``my_models.py`` beside it."""
    study = TINY_STUDY.replace("n_trials = 3", "n_trials = 1")
    mlp_teacher = 'architecture = {{ name = "mlp", params = {{ widths = [32] }} }}'
    own_teacher = TEACHER.replace("{", "{{").replace("}", "}}")
    study = study.replace(mlp_teacher, own_teacher)
    if not teacher:
        study = study.replace(f"[teacher]\n{own_teacher}\nrounds = 3\n", "")
    path = write_tiny_study(folder, study, space)
    (folder / "my_models.py").write_text(models)
    return path


def test_own_residual_cnn_runs_exports_and_reloads_through_the_cli(tmp_path, capsys):
    study_file = own_model_study(tmp_path)
    assert main(["run", str(study_file)]) == 0
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    trial = optuna.load_study(study_name="tiny", storage=storage).trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    export = ["export", "--storage", storage, "--study-name", "tiny", "--trial", "0"]
    output = tmp_path / "model.fsz"
    capsys.readouterr()

    # A bare export may not import the factory the artifact names.
    assert main([*export, "-o", str(output)]) == 2
    error = capsys.readouterr().err.strip()
    assert "my_models:build" in error and "--study-file" in error and "\n" not in error
    assert not output.exists()

    assert main([*export, "-o", str(output), "--study-file", str(study_file)]) == 0
    data = output.read_bytes()
    assert len(data) == trial.values[1]
    registry = resolve_study(study_file, get_registry()).registry
    model = load_model(data, registry)
    splits = get_registry().create("dataset", "digits", {}).load()
    with torch.no_grad():
        predictions = model(splits.test_inputs).argmax(1)
    accuracy = float((predictions == splits.test_labels).float().mean())
    assert accuracy == pytest.approx(trial.user_attrs["test_accuracy"])
    assert accuracy > 0.3  # learned something in 3 rounds (chance is 0.1)

    # The decoded model is the residual CNN, with trained BatchNorm buffers restored.
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    assert len(norms) == 3
    assert all(norm.running_var.ne(1.0).any() for norm in norms)
    # The quantizer stored the conv and linear weights as 6-bit codes; the rest is float32.
    bits = trial.user_attrs["bits"]
    assert bits["3.conv1.weight"] == bits["3.conv2.weight"] == bits["6.weight"] == 6
    float32 = trial.user_attrs["float32_tensors"]
    assert "3.bn1.running_mean" in float32["BatchNorm2d"]
    assert float32["Linear"] == ["6.bias"]
    assert all(bits[name] == 32 for names in float32.values() for name in names)

    # A bare load names the factory and says how to load it.
    with pytest.raises(ArtifactError, match="with_factories"):
        load_model(data, get_registry())


def test_an_artifact_never_makes_the_loader_import_code(tmp_path):
    spec = ModelSpec("factory", {"factory": "byom_never_imported:build"}, (4,), 2)
    weights = {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}
    data = build_artifact(spec, weights)
    registry = with_factories(
        get_registry(), {"other:build": lambda shape, classes: nn.Linear(4, 2)}
    )
    for candidate in (get_registry(), registry):
        with pytest.raises(ArtifactError, match="byom_never_imported:build"):
            load_model(data, candidate)
    assert "byom_never_imported" not in sys.modules
    build = lambda shape, classes: nn.Linear(shape[0], classes)  # noqa: E731
    model = load_model(data, with_factories(get_registry(), {"byom_never_imported:build": build}))
    assert isinstance(model, nn.Linear)


BAD_FACTORIES = [
    ("missing file", "other_models:build", RESIDUAL_CNN, "no module 'other_models'"),
    ("missing function", "my_models:make", RESIDUAL_CNN, "has no function 'make'"),
    ("import fails", "my_models:build", "import not_a_module_xyz\n", "importing"),
    ("not callable", "my_models:build", "build = 3\n", "non-callable 'build'"),
    ("bad kwargs", "my_models:build", "def build(input_shape, num_classes):\n    pass\n",
     "cannot be called"),
    ("bad reference", "my_models.build", RESIDUAL_CNN, "'module:function'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reference", "models", "expected"),
    [case[1:] for case in BAD_FACTORIES],
    ids=[case[0] for case in BAD_FACTORIES],
)
def test_bad_factories_are_one_line_config_errors_naming_field_and_file(
    tmp_path, capsys, reference, models, expected
):
    space = SPACE.replace('"my_models:build" }', f'"{reference}" }}')
    study_file = own_model_study(tmp_path, models, space, teacher=False)
    assert main(["validate", str(study_file)]) == 2
    error = capsys.readouterr().err.strip()
    assert expected in error and "\n" not in error
    assert str(tmp_path) in error and "dimensions.architecture.factory" in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [("raise ValueError('too small')", "raised ValueError: too small"),
     ("return 'a model'", "returned a str, not a torch.nn.Module")],
)  # fmt: skip
def test_a_failing_build_is_a_config_error_naming_field_and_file(tmp_path, body, expected):
    models = f"def build(input_shape, num_classes, width=8):\n    {body}\n"
    study_file = own_model_study(tmp_path, models)
    study = resolve_study(study_file, get_registry())
    with pytest.raises(ConfigError, match=expected) as caught:
        study.teacher_architecture.build().build((1, 8, 8), 10)
    assert caught.value.source == str(study_file)
    assert caught.value.field == "teacher.architecture.params.factory"


def test_an_importable_module_works_as_well(tmp_path, monkeypatch):
    package = tmp_path / "site"
    package.mkdir()
    (package / "byom_site_models.py").write_text(RESIDUAL_CNN)
    monkeypatch.syspath_prepend(str(package))
    space = SPACE.replace('"my_models:build" }', '"byom_site_models:build" }')
    study = resolve_study(own_model_study(tmp_path / "study", RESIDUAL_CNN, space), get_registry())
    family = study.registry.create("architecture", "factory", {
        "factory": "byom_site_models:build", "kwargs": {"width": 4}})  # fmt: skip
    model = family.build((1, 8, 8), 3)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_editing_the_model_code_changes_the_study_fingerprint(tmp_path):
    study_file = own_model_study(tmp_path)
    before = resolve_study(study_file, get_registry()).fingerprint()
    assert resolve_study(study_file, get_registry()).fingerprint() == before
    (tmp_path / "my_models.py").write_text(RESIDUAL_CNN.replace("width=8", "width=9"))
    assert resolve_study(study_file, get_registry()).fingerprint() != before


def test_editing_the_teachers_model_code_retrains_it_instead_of_using_the_cache(tmp_path):
    study_file = own_model_study(tmp_path)
    before = teacher_key(resolve_study(study_file, get_registry()))
    assert teacher_key(resolve_study(study_file, get_registry())) == before
    (tmp_path / "my_models.py").write_text(RESIDUAL_CNN.replace("width=8", "width=9"))
    assert teacher_key(resolve_study(study_file, get_registry())) != before
