"""Heterogeneous tiers end to end: the quickstart_tiers study, per-tier budgets and exports."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from fedsearch import load_model, resolve_study
from fedsearch.cli._main import main
from fedsearch.federated import accuracy
from fedsearch.host import get_registry
from fedsearch.study import export_trials
from fedsearch.trial import prepare_data
from tests._console import fedsearch
from tests._docs import doc_commands
from tests._studies import tiny_space, tiny_study, write_study
from tests.conftest import REPO

QUICKSTART_TIERS = REPO / "studies" / "quickstart_tiers.toml"
TIERS = {
    "tiers": [
        {"name": "small", "share": 0.5, "budget_bytes": 2000},
        {"name": "large", "share": 0.5, "budget_bytes": 9000},
    ]
}
TIER_SPACE = tiny_space(slots={"prune": ["none"], "quantize": ["none"], "distill": ["none"]})


def _refused(capsys, study: Path, *fragments: str) -> None:
    code = main(["validate", str(study)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def test_round_time_without_tiers_is_refused(tmp_path, capsys):
    study = tiny_study(search={"objectives": [{"name": "round_time"}]})
    _refused(capsys, write_study(tmp_path, study), "round_time", "[tiers]")


def test_tiers_with_a_compressor_stage_are_refused(tmp_path, capsys):
    path = write_study(tmp_path, tiny_study(tiers=TIERS))  # the tiny space prunes
    _refused(capsys, path, "search.slots.prune", '["none"]')


@pytest.mark.parametrize(
    ("slot", "candidates"), [("strategy", ["dp_fedavg"]), ("middleware", ["none", "local_dp"])]
)
def test_tiers_with_a_searched_strategy_or_middleware_are_refused(
    tmp_path, capsys, slot, candidates
):
    space = tiny_space(slots={**TIER_SPACE["slots"], slot: candidates})
    path = write_study(tmp_path, tiny_study(tiers=TIERS), space)
    _refused(capsys, path, f"search.slots.{slot}", "tiered studies")


def test_shares_must_sum_to_one(tmp_path, capsys):
    bad = {"tiers": [{**TIERS["tiers"][0], "share": 0.3}, TIERS["tiers"][1]]}
    _refused(capsys, write_study(tmp_path, tiny_study(tiers=bad), TIER_SPACE), "sum to 1")


@pytest.mark.e2e
def test_tiered_tiny_study_exports_each_tier(tmp_path):
    search = {"n_trials": 2, "objectives": [{"name": "round_time"}]}
    study = tiny_study(teacher={"rounds": 1}, tiers=TIERS, search=search)
    path = write_study(tmp_path, study, TIER_SPACE)
    assert fedsearch("run", str(path), cwd=tmp_path).returncode == 0
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    trial = optuna.load_study(study_name="tiny", storage=storage).trials[0]
    assert trial.values[3] == trial.user_attrs["round_time_s"] > 0
    assert [tier["name"] for tier in trial.user_attrs["tiers"]] == ["small", "large"]
    for tier in trial.user_attrs["tiers"]:
        out = tmp_path / f"{tier['name']}.fsz"
        result = fedsearch(
            "export", "--storage", storage, "--study-name", "tiny", "--trial", "0",
            "--tier", tier["name"], "-o", str(out), cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert out.stat().st_size == tier["model_bytes"]
    result = fedsearch(
        "export", "--storage", storage, "--study-name", "tiny", "--trial", "0",
        "--tier", "huge", "-o", str(tmp_path / "x.fsz"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2 and "no tier 'huge'" in result.stderr


@pytest.fixture(scope="module")
def quickstart_tiers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quickstart_tiers")
    result = fedsearch("run", str(QUICKSTART_TIERS), cwd=folder)
    assert result.returncode == 0, result.stderr
    storage = f"sqlite:///{folder / 'runs' / 'fedsearch.db'}"
    return folder, storage, optuna.load_study(study_name="quickstart_tiers", storage=storage)


@pytest.mark.e2e
@pytest.mark.slow
def test_quickstart_tiers_runs_to_its_budget(quickstart_tiers):
    _, _, study = quickstart_tiers
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 24
    assert study.metric_names == ["val_accuracy", "model_bytes", "comm_bytes", "round_time"]
    assert all(trial.values[3] > 0 for trial in complete)


@pytest.mark.e2e
@pytest.mark.slow
def test_every_feasible_tier_fits_its_budget_and_is_its_exported_artifact(quickstart_tiers):
    folder, storage, study = quickstart_tiers
    feasible = [
        t for t in study.get_trials(states=(TrialState.COMPLETE,)) if t.user_attrs["feasible"]
    ]
    assert feasible
    registry = get_registry()
    data = prepare_data(resolve_study(QUICKSTART_TIERS, registry))
    for trial in feasible:
        for tier in trial.user_attrs["tiers"]:
            assert tier["model_bytes"] <= tier["budget_bytes"]
            out = folder / f"t{trial.number}-{tier['name']}.fsz"
            export_trials(
                storage, "quickstart_tiers", "artifact", registry,
                trial=trial.number, output=out, tier=tier["name"],
            )  # fmt: skip
            artifact = out.read_bytes()
            assert len(artifact) == tier["model_bytes"]
            model = load_model(artifact, registry)
            assert accuracy(model, data.val_inputs, data.val_labels) == tier["val_accuracy"]
        budgets = [tier["budget_bytes"] for tier in trial.user_attrs["tiers"]]
        largest = trial.user_attrs["tiers"][budgets.index(max(budgets))]
        assert trial.values[1] == largest["model_bytes"]
        shares = {"sensor": 0.5, "phone": 0.3, "gateway": 0.2}
        weighted = sum(shares[t["name"]] * t["val_accuracy"] for t in trial.user_attrs["tiers"])
        assert trial.values[0] == pytest.approx(weighted)


@pytest.mark.e2e
@pytest.mark.slow
def test_the_docs_export_command_writes_the_sensor_tiers_artifact(quickstart_tiers):
    folder, _, study = quickstart_tiers
    page = REPO / "docs" / "heterogeneous-clients.md"
    (shown,) = [c for c in doc_commands([page]) if c.args[0] == "export"]
    result = fedsearch(*shown.args, cwd=folder)
    assert result.returncode == 0, result.stderr
    (sensor,) = [t for t in study.trials[0].user_attrs["tiers"] if t["name"] == "sensor"]
    assert (folder / "sensor.fsz").stat().st_size == sensor["model_bytes"]
