"""A whole (tiny) study: Optuna records, artifacts and budget."""

from __future__ import annotations

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.trial import TrialState

from fedsearch import OBJECTIVE_NAMES, resolve_study, run_study


def test_study_records_objectives_attributes_and_artifacts(tiny_study, registry, tmp_path):
    study = resolve_study(tiny_study, registry)
    optuna_study = run_study(study)
    trials = optuna_study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == study.config.search.n_trials == 3
    assert optuna_study.metric_names == list(OBJECTIVE_NAMES)
    teacher = optuna_study.user_attrs["teacher"]
    assert 0.5 < teacher["test_accuracy"] <= 1.0
    store = FileSystemArtifactStore(optuna_study.user_attrs["artifact_dir"])
    for trial in trials:
        attrs = trial.user_attrs
        for key in (
            "test_accuracy",
            "parameters",
            "val_accuracy_history",
            "sparsity",
            "bits",
            "wall_time_s",
            "teacher_test_accuracy",
            "selection",
            "plugins",
            "layers",
        ):
            assert key in attrs, key
        assert len(attrs["val_accuracy_history"]) == study.config.federation.rounds
        assert attrs["val_accuracy_history"][-1] is not None
        assert attrs["plugins"]["architecture.mlp"].startswith("builtin.architectures==")
        partition = attrs["partition"]
        assert partition["name"] == "iid" and partition["clients"] == 4
        assert sum(map(sum, partition["label_counts"])) == partition["examples"]
        downloaded = tmp_path / f"{trial.number}.fsz"
        download_artifact(
            artifact_store=store, file_path=str(downloaded), artifact_id=attrs["artifact_id"]
        )
        assert downloaded.stat().st_size == trial.values[1]  # model_bytes is the artifact's length
        assert (
            trial.values[2]
            == attrs["uplink_bytes"] + attrs["downlink_bytes"] + attrs["one_time_bytes"]
        )


def test_rerunning_a_finished_study_adds_nothing_and_n_trials_adds_more(tiny_study, registry):
    study = resolve_study(tiny_study, registry)
    run_study(study)
    again = run_study(study)
    assert len(again.trials) == 3
    more = run_study(study, n_trials=1)
    assert len(more.trials) == 4
    assert len({t.number for t in more.trials}) == 4
    assert optuna.load_study(study_name="tiny", storage=study.storage_url).metric_names == list(
        OBJECTIVE_NAMES
    )
