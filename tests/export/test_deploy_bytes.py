"""The ``deploy_bytes`` objective: the size of the ONNX export with integer weights."""

from __future__ import annotations

import pytest
from optuna.artifacts import FileSystemArtifactStore

from fedsearch import (
    OBJECTIVE_NAMES,
    PluginError,
    decode_artifact,
    load_model,
    resolve_study,
    run_study,
)
from fedsearch.export import integer_onnx
from tests.conftest import TINY_STUDY, write_tiny_study

QUANTIZED_SPACE = """
[slots]
architecture = ["mlp"]
quantize = ["uniform"]

[dimensions]
"architecture.mlp.depth" = { value = 1 }
"architecture.mlp.widths" = { choices = [16, 32] }
"quantize.uniform.bits" = { choices = [4, 8] }
"""


def test_deploy_bytes_is_the_length_of_the_integer_onnx_export(tmp_path, registry):
    study_text = TINY_STUDY.replace(
        'sampler = {{ name = "random" }}',
        'sampler = {{ name = "random" }}\nobjectives = [{{ name = "deploy_bytes" }}]',
    ).replace("n_trials = 3", "n_trials = 2")
    study = run_study(
        resolve_study(write_tiny_study(tmp_path, study_text, QUANTIZED_SPACE), registry)
    )
    assert study.metric_names == [*OBJECTIVE_NAMES, "deploy_bytes"]
    store = FileSystemArtifactStore(study.user_attrs["artifact_dir"])
    for trial in study.trials:
        with store.open_reader(trial.user_attrs["artifact_id"]) as reader:
            data = reader.read()
        exported = integer_onnx(load_model(data, registry), decode_artifact(data))
        assert trial.values[3] == len(exported)
        # integer weights: far below the float32 weights alone
        parameters = trial.user_attrs["parameters"]
        assert trial.values[3] < 4 * parameters


def test_deploy_bytes_needs_the_artifact(registry):
    objective = registry.create("objective", "deploy_bytes", {})
    model = registry.create("architecture", "mlp", {"widths": [16]}).build((1, 8, 8), 10)
    with pytest.raises(PluginError, match="deploy_bytes measures the trial's artifact"):
        objective.measure(model, (1, 8, 8))
