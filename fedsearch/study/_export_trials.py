"""Export one trial or the whole feasible front, each file re-scored in its runtime."""

from __future__ import annotations

import json
from pathlib import Path

from fedsearch._errors import ConfigError
from fedsearch.artifact import decode_artifact
from fedsearch.host import ComponentRegistry
from fedsearch.study._export import (
    FILE_SUFFIXES,
    ExportFormat,
    export_model,
    loaded_trial_artifact,
)
from fedsearch.study._export_metadata import export_metadata
from fedsearch.study._pareto import load_existing_study, pareto_trials
from fedsearch.study._rescore import ExportScore, rescore, study_splits

TABLE_FILE = "exports.json"
"""The re-scoring table ``--pareto`` writes beside the files."""


def export_trials(
    storage: str,
    study_name: str | None,
    export_format: ExportFormat,
    registry: ComponentRegistry,
    *,
    trial: int | None = None,
    output: str | Path,
    tier: str | None = None,
) -> list[ExportScore]:
    """Export trial ``trial`` to the file ``output``, or (``trial`` None) the feasible
    Pareto front into the folder ``output`` as ``trial-N.<suffix>`` plus ``exports.json``.

    Every file is re-scored (see ``_rescore``); the scores are returned. ``tier``
    (with ``trial``) exports that device tier's own artifact instead.

    Raises:
        ConfigError: No such study or trial, a missing artifact, an empty front, or a
            format whose package is missing.
        ArtifactError: A stored artifact does not decode.
    """
    study = load_existing_study(storage, study_name)
    study_name = study.study_name
    folder = Path(output)
    if tier is not None and trial is None:
        raise ConfigError("--tier exports one trial's tier: give --trial N", field="--tier")
    if trial is None:
        numbers = [frozen.number for frozen in pareto_trials(study)]
        if not numbers:
            raise ConfigError(
                f"study {study_name!r} has no feasible trial on its Pareto front to export; "
                "run more trials or relax its constraints",
                field="--pareto",
            )
        targets = {n: folder / f"trial-{n}{FILE_SUFFIXES[export_format]}" for n in numbers}
    else:
        targets = {trial: folder}
    artifacts = {number: loaded_trial_artifact(study, number, tier=tier) for number in targets}
    data = study_splits(study, registry)
    trials = {frozen.number: frozen for frozen in study.get_trials(deepcopy=False)}
    scores = []
    for number, path in targets.items():
        spec = decode_artifact(artifacts[number]).spec
        metadata = export_metadata(study, trials[number], spec, registry)
        model = export_model(artifacts[number], registry, export_format, path, metadata=metadata)
        scores.append(
            rescore(number, export_format, path, model, len(artifacts[number]), data, registry)
        )
    if trial is None:
        folder.mkdir(parents=True, exist_ok=True)
        table = [score.as_dict() for score in scores]
        (folder / TABLE_FILE).write_text(json.dumps(table, indent=2) + "\n")
    return scores
