"""``report`` and ``export`` read and copy only files inside the study's artifact folder."""

from __future__ import annotations

import json
import os

import pytest
import sqlalchemy

from fedsearch import resolve_study, run_study
from fedsearch.cli._main import main
from fedsearch.study import pareto_trials
from tests._studies import tiny_study, write_study


@pytest.fixture(scope="module")
def finished(tmp_path_factory, registry):
    folder = tmp_path_factory.mktemp("crafted")
    study = resolve_study(write_study(folder, tiny_study(search={"n_trials": 1})), registry)
    optuna_study = run_study(study)
    return study.storage_url, optuna_study


def point_artifact_at(storage: str, trial_number: int, artifact_id: str) -> None:
    """Rewrite a finished trial's artifact id in the database, as a crafted file would."""
    engine = sqlalchemy.create_engine(storage)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "UPDATE trial_user_attributes SET value_json = :value WHERE key = 'artifact_id' "
                "AND trial_id = (SELECT trial_id FROM trials WHERE number = :number)"
            ),
            {"value": json.dumps(artifact_id), "number": trial_number},
        )
    engine.dispose()


@pytest.fixture
def crafted(finished, tmp_path):
    """The study with its Pareto trial's artifact id pointing at a secret outside its folder."""
    storage, study = finished
    (number,) = [trial.number for trial in pareto_trials(study)]
    original = study.trials[number].user_attrs["artifact_id"]
    secret = tmp_path / "secret.txt"
    secret.write_text("not an artifact")
    yield storage, number, secret, study.user_attrs["artifact_dir"]
    point_artifact_at(storage, number, original)


@pytest.mark.parametrize("naming", ["relative", "absolute"])
def test_report_refuses_an_artifact_outside_the_folder(crafted, tmp_path, capsys, naming):
    storage, number, secret, artifact_dir = crafted
    target = str(secret) if naming == "absolute" else os.path.relpath(secret, artifact_dir)
    point_artifact_at(storage, number, target)
    out = tmp_path / "report"
    assert main(["report", "--storage", storage, "--study-name", "tiny", "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"trial {number} names artifact" in error and "not a file in the" in error
    assert len(error.strip().splitlines()) == 1
    assert not any(path.read_bytes() == secret.read_bytes() for path in out.rglob("*.fsz"))


def test_export_refuses_an_artifact_outside_the_folder(crafted, tmp_path, capsys):
    storage, number, secret, _ = crafted
    point_artifact_at(storage, number, str(secret))
    out = tmp_path / "model.fsz"
    args = ["export", "--storage", storage, "--study-name", "tiny", "--trial", str(number)]
    assert main([*args, "-o", str(out)]) == 2
    assert "not a file in the study's artifact folder" in capsys.readouterr().err
    assert not out.exists()


def test_the_untouched_study_still_reports_and_exports(finished, tmp_path):
    storage, study = finished
    (trial,) = pareto_trials(study)
    args = ["--storage", storage, "--study-name", "tiny"]
    assert main(["report", *args, "-o", str(tmp_path / "report")]) == 0
    assert main(["export", *args, "--trial", str(trial.number), "-o", str(tmp_path / "m.fsz")]) == 0
    assert (tmp_path / "m.fsz").read_bytes() == (
        tmp_path / "report" / "artifacts" / f"trial-{trial.number}.fsz"
    ).read_bytes()
