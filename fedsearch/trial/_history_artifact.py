"""A trial's round history as a JSON artifact, so nothing is cut at the dashboard's 1,024 chars."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from fedsearch.federated import RoundRecord

HISTORY_ATTR = "history_artifact_id"
"""User attribute holding the artifact id of ``history-<N>.json``."""


def upload_history(
    trial: optuna.Trial, store: FileSystemArtifactStore, history: Sequence[RoundRecord]
) -> str:
    """Upload ``history-<N>.json`` (one object per round) as an artifact of ``trial``."""
    records = [dataclasses.asdict(record) for record in history]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"history-{trial.number}.json"
        path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
        return upload_artifact(
            artifact_store=store,
            file_path=str(path),
            study_or_trial=trial,
            mimetype="application/json",
            encoding="utf-8",
        )
