"""``fedsearch export``: a stored trial's model as its artifact, ONNX or TorchScript."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import optuna
import torch
from torch import nn

from fedsearch._errors import ConfigError
from fedsearch.artifact import decode_artifact
from fedsearch.host import ComponentRegistry
from fedsearch.study._pareto import load_existing_study
from fedsearch.study._storage_checks import check_output_file
from fedsearch.trial._model_io import load_model

ExportFormat = Literal["artifact", "onnx", "torchscript"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("artifact", "onnx", "torchscript")
ONNX_OPSET = 17


def trial_artifact(storage: str, study_name: str, trial_number: int) -> bytes:
    """The artifact bytes a finished trial stored.

    Raises:
        ConfigError: No such study or trial, the trial did not finish, or its
            artifact is missing from the study's artifact folder.
    """
    study = load_existing_study(storage, study_name)
    trials = study.get_trials(deepcopy=False)
    numbers = [trial.number for trial in trials]
    if trial_number not in numbers:
        shown = f"0..{max(numbers)}" if numbers else "none"
        raise ConfigError(
            f"study {study_name!r} has no trial {trial_number} (trials: {shown})", field="--trial"
        )
    trial = trials[numbers.index(trial_number)]
    artifact_id = trial.user_attrs.get("artifact_id")
    if trial.state != optuna.trial.TrialState.COMPLETE or artifact_id is None:
        raise ConfigError(
            f"trial {trial_number} of {study_name!r} is {trial.state.name}, not COMPLETE: it has "
            "no artifact; pick a finished trial (see `fedsearch pareto`)",
            field="--trial",
        )
    folder = study.user_attrs.get("artifact_dir")
    if folder is None or not (Path(folder) / str(artifact_id)).exists():
        raise ConfigError(
            f"artifact {artifact_id} of trial {trial_number} is not in {folder}; run the export "
            "where the study's output folder is (its artifacts/ subfolder)",
            field="--storage",
        )
    return stored_artifact(Path(folder), artifact_id, trial_number).read_bytes()


def stored_artifact(folder: Path, artifact_id: object, trial_number: int) -> Path:
    """The file of a trial's artifact, which must be a file directly inside ``folder``.

    The artifact id comes from the study's database, which may be crafted: an id
    that names another path (``../``, an absolute path, a link leading out of the
    folder) is refused, so ``report`` and ``export`` never read or copy files
    outside the study's artifact folder.

    Raises:
        ConfigError: The id is not a plain file name inside ``folder``.
    """
    root = folder.resolve()
    path = (root / str(artifact_id)).resolve()
    if (
        not isinstance(artifact_id, str)
        or Path(artifact_id).name != artifact_id
        or path.parent != root
        or not path.is_file()
    ):
        raise ConfigError(
            f"trial {trial_number} names artifact {artifact_id!r}, which is not a file in the "
            f"study's artifact folder {root}; the database was changed by hand or crafted: "
            "pass a database that fedsearch wrote",
            field="--storage",
        )
    return path


def export_model(
    data: bytes, registry: ComponentRegistry, export_format: ExportFormat, path: str | Path
) -> nn.Module:
    """Write an artifact as ``export_format`` to ``path``; return the decoded model.

    ``artifact`` writes the bytes unchanged (after checking they decode). ``onnx``
    writes an ONNX graph (opset 17, dynamic batch) with input ``input`` and
    output ``logits``; ``torchscript`` a traced TorchScript module.

    Raises:
        ArtifactError: The bytes are not a valid artifact.
        ConfigError: Unknown format, the onnx package is missing, or nothing can
            be written at ``path`` (a folder is there, or its folder is not writable).
    """
    check_output_file(path, field="--output")
    model = load_model(data, registry)
    spec = decode_artifact(data).spec
    example = torch.zeros((1, *spec.input_shape))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if export_format == "artifact":
        target.write_bytes(data)
    elif export_format == "onnx":
        _export_onnx(model, example, target)
    elif export_format == "torchscript":
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
            torch.jit.trace(model, example).save(str(target))
    else:
        raise ConfigError(
            f"unknown export format {export_format!r}; use one of {', '.join(EXPORT_FORMATS)}",
            field="--format",
        )
    return model


def _export_onnx(model: nn.Module, example: torch.Tensor, target: Path) -> None:
    try:
        import onnx  # noqa: F401  (torch.onnx needs it)
    except ImportError as exc:
        raise ConfigError(
            "ONNX export needs the onnx package: pip install 'fedsearch[export]'", field="--format"
        ) from exc
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter
        torch.onnx.export(
            model,
            (example,),
            str(target),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
