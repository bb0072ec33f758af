"""A trial's round history as a JSON artifact, so nothing is cut at the dashboard's 1,024 chars."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import optuna
from optuna.artifacts import FileSystemArtifactStore

from fedsearch.federated import RoundRecord
from fedsearch.trial._upload import upload_bytes

HISTORY_ATTR = "history_artifact_id"
"""User attribute holding the artifact id of ``history-<N>.json``."""


def upload_history(
    trial: optuna.Trial, store: FileSystemArtifactStore, history: Sequence[RoundRecord]
) -> str:
    """Upload ``history-<N>.json`` (one object per round) as an artifact of ``trial``."""
    records = [dataclasses.asdict(record) for record in history]
    text = json.dumps(records, indent=1) + "\n"
    filename = f"history-{trial.number}.json"
    return upload_bytes(store, trial, text.encode("utf-8"), filename, "application/json", "utf-8")
