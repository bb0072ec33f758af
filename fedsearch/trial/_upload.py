"""Uploading bytes held in memory as an Optuna artifact of a trial."""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact


def upload_bytes(
    store: FileSystemArtifactStore,
    trial: optuna.Trial,
    data: bytes,
    filename: str,
    mimetype: str,
    encoding: str | None = None,
) -> str:
    """Upload ``data`` as the file ``filename``, an artifact of ``trial``; return its id."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / filename
        path.write_bytes(data)
        return upload_artifact(
            artifact_store=store,
            file_path=str(path),
            study_or_trial=trial,
            mimetype=mimetype,
            encoding=encoding,
        )
