"""``fedsearch export``: artifact, ONNX (run in onnxruntime) and TorchScript."""

from __future__ import annotations

import numpy as np
import onnxruntime
import optuna
import pytest
import torch

from fedsearch import get_registry, load_model
from fedsearch.cli._main import main
from tests.conftest import TINY_STUDY, write_tiny_study

SPACE = """
[slots]
architecture = ["cnn"]
factorize = ["svd"]
prune = ["structured"]
quantize = ["uniform"]

[dimensions]
"architecture.cnn.channels" = { value = 8 }
"architecture.cnn.hidden" = { value = 32 }
"factorize.svd.rank_ratio" = { value = 0.3 }
"prune.structured.sparsity" = { value = 0.5 }
"quantize.uniform.bits" = { value = 4 }
"""


@pytest.fixture(scope="module")
def stored_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    study = write_tiny_study(folder, TINY_STUDY.replace("n_trials = 3", "n_trials = 1"), SPACE)
    assert main(["run", str(study)]) == 0
    return f"sqlite:///{folder / 'runs' / 'fedsearch.db'}", folder


def export(storage, fmt, path):
    return main(["export", "--storage", storage, "--study-name", "tiny", "--trial", "0",
                 "--format", fmt, "-o", str(path)])  # fmt: skip


def digits_test_set():
    splits = get_registry().create("dataset", "digits", {}).load()
    return splits.test_inputs, splits.test_labels


def test_artifact_export_is_the_stored_artifact(stored_study, tmp_path):
    storage, _ = stored_study
    assert export(storage, "artifact", tmp_path / "model.fsz") == 0
    data = (tmp_path / "model.fsz").read_bytes()
    trial = optuna.load_study(study_name="tiny", storage=storage).trials[0]
    assert len(data) == trial.values[1]  # model_bytes is this file's length
    model = load_model(data, get_registry())
    inputs, labels = digits_test_set()
    with torch.no_grad():
        accuracy = float((model(inputs).argmax(1) == labels).float().mean())
    assert accuracy == pytest.approx(trial.user_attrs["test_accuracy"])
    # structured pruning and low-rank made the stored model smaller than the family's default
    family = get_registry().create("architecture", "cnn", {"channels": [8, 8], "hidden": 32})
    assert trial.user_attrs["parameters"] < sum(
        p.numel() for p in family.build((1, 8, 8), 10).parameters()
    )


def test_onnx_export_matches_pytorch_in_onnxruntime(stored_study, tmp_path):
    storage, _ = stored_study
    assert export(storage, "artifact", tmp_path / "model.fsz") == 0
    assert export(storage, "onnx", tmp_path / "model.onnx") == 0
    model = load_model((tmp_path / "model.fsz").read_bytes(), get_registry())
    inputs, labels = digits_test_set()
    session = onnxruntime.InferenceSession(
        str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (onnx_logits,) = session.run(None, {"input": inputs.numpy()})
    with torch.no_grad():
        torch_logits = model(inputs).numpy()
    assert np.abs(onnx_logits - torch_logits).max() <= 1e-4
    onnx_accuracy = float((onnx_logits.argmax(1) == labels.numpy()).mean())
    torch_accuracy = float((torch_logits.argmax(1) == labels.numpy()).mean())
    assert onnx_accuracy == torch_accuracy


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_matches_pytorch(stored_study, tmp_path):
    storage, _ = stored_study
    assert export(storage, "artifact", tmp_path / "model.fsz") == 0
    assert export(storage, "torchscript", tmp_path / "model.pt") == 0
    model = load_model((tmp_path / "model.fsz").read_bytes(), get_registry())
    scripted = torch.jit.load(str(tmp_path / "model.pt"))
    inputs, _ = digits_test_set()
    with torch.no_grad():
        assert torch.allclose(scripted(inputs), model(inputs), atol=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trial", "7"], "has no trial 7 (trials: 0..0)"),
        (["--study-name", "nope"], "no study named 'nope'"),
    ],
)
def test_bad_export_requests_exit_2_with_one_clear_line(stored_study, tmp_path, capsys, args,
                                                        message):  # fmt: skip
    storage, _ = stored_study
    base = {"--storage": storage, "--study-name": "tiny", "--trial": "0"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["export", *[item for pair in base.items() for item in pair], "-o", str(tmp_path / "x")]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error
    assert not (tmp_path / "x").exists()
