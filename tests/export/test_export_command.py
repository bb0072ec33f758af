"""``fedsearch export``: metadata in every file, re-scoring in each runtime, ``--pareto``."""

from __future__ import annotations

import json
import zipfile

import onnx
import optuna
import pytest

from fedsearch import __version__
from fedsearch.cli._main import main
from fedsearch.study import pareto_trials
from tests.conftest import TINY_STUDY, write_tiny_study

SPACE = """
[slots]
architecture = ["mlp", "cnn"]
prune = ["none", "magnitude"]
quantize = ["uniform"]

[dimensions]
"architecture.mlp.depth" = { value = 1 }
"architecture.mlp.widths" = { choices = [16, 32] }
"architecture.cnn.depth" = { value = 1 }
"architecture.cnn.channels" = { value = 4 }
"architecture.cnn.hidden" = { value = 32 }
"prune.magnitude.sparsity" = { value = 0.8 }
"quantize.uniform.bits" = { choices = [3, 4, 8] }
"""


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    study = write_tiny_study(folder, TINY_STUDY.replace("n_trials = 3", "n_trials = 4"), SPACE)
    assert main(["run", str(study)]) == 0
    storage = f"sqlite:///{folder / 'runs' / 'fedsearch.db'}"
    return storage, optuna.load_study(study_name="tiny", storage=storage)


def export(storage, *args):
    return main(["export", "--storage", storage, "--study-name", "tiny", *args])


def test_onnx_export_carries_metadata_and_prints_its_rescoring(
    stored, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "400")  # the whole path on one line
    storage, study = stored
    trial = study.trials[1]
    target = tmp_path / "[bold]model.onnx"  # user text in the table is not markup
    assert export(storage, "--trial", "1", "--format", "onnx", "-o", str(target)) == 0
    props = {prop.key: prop.value for prop in onnx.load(str(target)).metadata_props}
    assert props["fedsearch.study"] == "tiny" and props["fedsearch.trial"] == "1"
    assert props["fedsearch.selection"] == trial.user_attrs["summary"]
    assert json.loads(props["fedsearch.input_shape"]) == [1, 8, 8]
    assert props["fedsearch.num_classes"] == "10"
    assert json.loads(props["fedsearch.class_names"]) == [str(digit) for digit in range(10)]
    assert "digits" in props["fedsearch.preprocessing"]
    assert float(props["fedsearch.val_accuracy"]) == trial.values[0]
    assert float(props["fedsearch.test_accuracy"]) == trial.user_attrs["test_accuracy"]
    assert props["fedsearch.version"] == __version__
    out = capsys.readouterr().out
    assert f"{target} " in out
    assert f"{trial.values[0]:.4f}" in out and str(target.stat().st_size) in out


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_carries_the_same_metadata(stored, tmp_path):
    storage, study = stored
    target = str(tmp_path / "m.pt")
    assert export(storage, "--trial", "0", "--format", "torchscript", "-o", target) == 0
    with zipfile.ZipFile(tmp_path / "m.pt") as archive:
        name = next(item for item in archive.namelist() if item.endswith("extra/fedsearch.json"))
        metadata = json.loads(archive.read(name))
    assert metadata["fedsearch.trial"] == "0"
    assert float(metadata["fedsearch.val_accuracy"]) == study.trials[0].values[0]


def test_pareto_export_writes_every_front_trial_and_the_table(stored, tmp_path):
    storage, study = stored
    folder = tmp_path / "front"
    assert export(storage, "--pareto", "--format", "onnx", "-o", str(folder)) == 0
    table = json.loads((folder / "exports.json").read_text())
    front = pareto_trials(study)
    assert [row["trial"] for row in table] == [trial.number for trial in front]
    for row, trial in zip(table, front, strict=True):
        path = folder / f"trial-{trial.number}.onnx"
        assert row["path"] == str(path) and row["bytes"] == path.stat().st_size
        assert row["model_bytes"] == trial.values[1]
        assert row["ratio"] == pytest.approx(row["bytes"] / row["model_bytes"])
        # onnxruntime reproduces the recorded accuracies exactly
        assert row["val_accuracy"] == trial.values[0]
        assert row["test_accuracy"] == trial.user_attrs["test_accuracy"]
        assert row["max_difference"] <= 1e-5
        types = {item.data_type for item in onnx.load(str(path)).graph.initializer}
        assert types & {onnx.TensorProto.INT4, onnx.TensorProto.INT8}


def test_export_needs_a_trial_or_the_front(stored, tmp_path, capsys):
    storage, _ = stored
    with pytest.raises(SystemExit) as exit_info:
        export(storage, "--format", "onnx", "-o", str(tmp_path / "x"))
    assert exit_info.value.code == 2
    assert "one of the arguments --trial --pareto is required" in capsys.readouterr().err


def test_executorch_export_runs_in_the_executorch_runtime(stored, tmp_path):
    pytest.importorskip("executorch", reason="the mobile extra: pip install 'fedsearch[mobile]'")
    storage, study = stored
    assert export(storage, "--pareto", "--format", "executorch", "-o", str(tmp_path)) == 0
    rows = json.loads((tmp_path / "exports.json").read_text())
    trials = {trial.number: trial for trial in study.trials}
    for row in rows:
        assert row["format"] == "executorch" and row["path"].endswith(".pte")
        assert row["val_accuracy"] == trials[row["trial"]].values[0]
        assert row["test_accuracy"] == trials[row["trial"]].user_attrs["test_accuracy"]
        assert row["max_difference"] <= 1e-5
    metadata = json.loads((tmp_path / f"trial-{rows[0]['trial']}.pte.fedsearch.json").read_text())
    assert metadata["fedsearch.trial"] == str(rows[0]["trial"])
