"""``fedsearch export``: a stored trial's model as its artifact, ONNX, TorchScript or ExecuTorch."""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import optuna
import torch
from torch import nn

from fedsearch._errors import ConfigError
from fedsearch.artifact import decode_artifact
from fedsearch.export import executorch_program, integer_onnx
from fedsearch.host import ComponentRegistry
from fedsearch.study._pareto import load_existing_study
from fedsearch.study._storage_checks import check_output_file
from fedsearch.trial._model_io import load_model

ExportFormat = Literal["artifact", "onnx", "torchscript", "executorch"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("artifact", "onnx", "torchscript", "executorch")
FILE_SUFFIXES: dict[str, str] = {
    "artifact": ".fsz",
    "onnx": ".onnx",
    "torchscript": ".pt",
    "executorch": ".pte",
}
METADATA_FILE = "fedsearch.json"
"""Name of the metadata in a TorchScript file's extra files (and the suffix of ExecuTorch's)."""


def trial_artifact(
    storage: str, study_name: str | None, trial_number: int, *, tier: str | None = None
) -> bytes:
    """The artifact bytes a finished trial stored (``tier``: that device tier's own).

    Raises:
        ConfigError: No such study, trial or tier, the trial did not finish, or
            its artifact is missing from the study's artifact folder.
    """
    study = load_existing_study(storage, study_name)
    return loaded_trial_artifact(study, trial_number, tier=tier)


def loaded_trial_artifact(
    study: optuna.Study, trial_number: int, *, tier: str | None = None
) -> bytes:
    """``trial_artifact`` of a study already loaded (no storage round trip per trial)."""
    study_name = study.study_name
    trials = study.get_trials(deepcopy=False)
    numbers = [trial.number for trial in trials]
    if trial_number not in numbers:
        shown = f"0..{max(numbers)}" if numbers else "none"
        raise ConfigError(
            f"study {study_name!r} has no trial {trial_number} (trials: {shown})", field="--trial"
        )
    trial = trials[numbers.index(trial_number)]
    artifact_id = trial.user_attrs.get("artifact_id")
    if tier is not None:
        artifact_id = tier_artifact_id(trial, tier)
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


def tier_artifact_id(trial: optuna.trial.FrozenTrial, tier: str) -> object:
    """The artifact id of ``tier`` in a tiered trial's ``tiers`` attribute.

    Raises:
        ConfigError: The trial has no tiers, or none named ``tier``.
    """
    tiers = trial.user_attrs.get("tiers") or []
    names = [entry.get("name") for entry in tiers if isinstance(entry, dict)]
    if tier not in names:
        shown = ", ".join(str(name) for name in names) or "none: the study has no [tiers]"
        raise ConfigError(
            f"trial {trial.number} has no tier {tier!r} (tiers: {shown})", field="--tier"
        )
    return tiers[names.index(tier)].get("artifact_id")


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
    data: bytes,
    registry: ComponentRegistry,
    export_format: ExportFormat,
    path: str | Path,
    *,
    metadata: Mapping[str, str] | None = None,
) -> nn.Module:
    """Write an artifact as ``export_format`` to ``path``; return the decoded model.

    ``artifact`` writes the bytes unchanged (after checking they decode).
    ``onnx`` writes an ONNX graph (opset 21, dynamic batch, input ``input``,
    output ``logits``) that keeps the artifact's stored weights: integer codes
    feeding ``DequantizeLinear``, half floats, sparse tensors
    (``fedsearch.export.integer_onnx``), with ``metadata`` as its
    ``metadata_props``. ``torchscript`` writes a traced TorchScript module with
    ``metadata`` as JSON in its extra file ``fedsearch.json``; ``executorch`` an
    ExecuTorch program (XNNPACK delegate) with the metadata beside it in
    ``PATH.fedsearch.json``.

    Raises:
        ArtifactError: The bytes are not a valid artifact.
        ConfigError: Unknown format, the package the format needs is missing, or
            nothing can be written at ``path`` (a folder is there, or its folder is
            not writable).
    """
    check_output_file(path, field="--output")
    if export_format not in EXPORT_FORMATS:
        raise ConfigError(
            f"unknown export format {export_format!r}; use one of {', '.join(EXPORT_FORMATS)}",
            field="--format",
        )
    artifact = decode_artifact(data)
    model = load_model(data, registry)
    content = json.dumps(dict(metadata or {}), indent=1)
    if export_format == "onnx":
        payload = integer_onnx(model, artifact, metadata)
    elif export_format == "torchscript":
        payload = _torchscript(model, artifact.spec.input_shape, content)
    elif export_format == "executorch":
        payload = executorch_program(model, artifact.spec.input_shape)
    else:
        payload = data
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    if export_format == "executorch":
        Path(f"{target}.{METADATA_FILE}").write_text(content)
    return model


def _torchscript(model: nn.Module, input_shape: tuple[int, ...], metadata: str) -> bytes:
    """A traced TorchScript module with ``metadata`` as its extra file ``fedsearch.json``."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
        traced = torch.jit.trace(model, torch.zeros((1, *input_shape)))
        torch.jit.save(traced, buffer, _extra_files={METADATA_FILE: metadata})
    return buffer.getvalue()
