"""Warm start: an earlier study's feasible front runs first; TPE, GP and the RL controller
learn from its trials; an incompatible earlier study is one clear error."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from fedsearch import ConfigError, resolve_study, run_study
from fedsearch.study._pareto import pareto_trials
from fedsearch.study._warm_start import (
    WARM_START_ATTR,
    HistorySampler,
    load_warm_start,
    sampler_factory,
)
from tests._console import fedsearch
from tests._studies import tiny_space, tiny_study, write_study


def earlier_study(tmp_path, registry, **space_changes):
    path = write_study(
        tmp_path / "a", tiny_study(search={"n_trials": 5}), tiny_space(**space_changes)
    )
    study = resolve_study(path, registry)
    return study, run_study(study)


def later_study(tmp_path, registry, storage, sampler="tpe", **space_changes):
    search = {
        "n_trials": 4,
        "sampler": {"name": sampler, "params": {"n_startup_trials": 2} if sampler == "tpe" else {}},
        "warm_start": {"study": "tiny", "storage": storage},
    }
    study = tiny_study(name="later", search=search, federation={"rounds": 2})
    return resolve_study(write_study(tmp_path / "b", study, tiny_space(**space_changes)), registry)


def test_the_earlier_front_runs_first_and_nothing_else_is_copied(tmp_path, registry):
    earlier, earlier_optuna = earlier_study(tmp_path, registry)
    front = pareto_trials(earlier_optuna)
    assert front
    later = later_study(tmp_path, registry, earlier.storage_url)
    trials = run_study(later).get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    queued = [t for t in trials if WARM_START_ATTR in t.user_attrs][: len(front)]
    assert [t.params for t in queued] == [t.params for t in sorted(front, key=lambda t: t.number)][
        : len(queued)
    ]
    assert queued[0].user_attrs[WARM_START_ATTR].startswith("tiny#")
    # re-measured under the later study's 2 rounds, not copied
    assert all(len(t.user_attrs["history"]) == 2 for t in trials)


def test_history_reaches_only_samplers_that_use_it(tmp_path, registry):
    earlier, _ = earlier_study(tmp_path, registry)
    for sampler, wrapped in [
        ("tpe", True),
        ("gp", True),
        ("rl_controller", True),
        ("nsga2", False),
    ]:
        later = later_study(tmp_path / sampler, registry, earlier.storage_url, sampler=sampler)
        warm = load_warm_start(later)
        assert warm is not None and len(warm.trials) == 5
        assert all(t.number < 0 for t in warm.trials)  # never collide with the new study's
        built = sampler_factory(later, warm)(0)
        assert isinstance(built, HistorySampler) == wrapped, sampler


def test_tpe_learns_from_the_earlier_trials():
    distribution = CategoricalDistribution(["a", "b", "c", "d"])
    history = []
    for number in range(24):
        family = "abcd"[number % 4]
        good = family == "b"
        trial = create_trial(
            params={"family": family},
            distributions={"family": distribution},
            values=[0.9 if good else 0.2, 10.0 if good else 100.0],
        )
        trial.number = trial._trial_id = -1 - number
        history.append(trial)

    def proposals(with_history: bool) -> list[str]:
        tpe = optuna.samplers.TPESampler(n_startup_trials=10, seed=0)
        sampler = HistorySampler(tpe, history) if with_history else tpe
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        chosen = []
        for _ in range(8):
            trial = study.ask()
            chosen.append(trial.suggest_categorical("family", ["a", "b", "c", "d"]))
            study.tell(trial, [0.5, 50.0])
        return chosen

    assert proposals(True).count("b") >= 6  # past its 10 startup trials thanks to the history
    assert proposals(False).count("b") <= 4  # random: its startup trials


def test_an_incompatible_earlier_study_is_one_clear_error(tmp_path, registry):
    earlier, _ = earlier_study(tmp_path, registry)
    dimensions = {"architecture.mlp.widths": {"choices": [64, 128]}}
    later = later_study(tmp_path, registry, earlier.storage_url, dimensions=dimensions)
    with pytest.raises(ConfigError, match="not compatible") as error:
        run_study(later)
    message = str(error.value)
    assert "architecture.mlp.widths.0" in message and "search.warm_start" in message
    assert "\n" not in message
    assert "later" not in optuna.get_all_study_names(earlier.storage_url)  # nothing stored


def test_a_missing_earlier_study_is_a_config_error(tmp_path, registry):
    earlier, _ = earlier_study(tmp_path, registry)
    later = later_study(tmp_path, registry, earlier.storage_url)
    search = later.config.search.model_copy(
        update={"warm_start": later.config.search.warm_start.model_copy(update={"study": "nope"})}
    )
    later = type(later)(
        **{**later.__dict__, "config": later.config.model_copy(update={"search": search})}
    )
    with pytest.raises(ConfigError, match="no study named 'nope'"):
        load_warm_start(later)


def test_the_cli_flag_warm_starts_and_exits_2_on_a_bad_study(tmp_path, registry):
    earlier, _ = earlier_study(tmp_path, registry)
    path = write_study(tmp_path / "c", tiny_study(name="later", search={"n_trials": 2}))
    bad = fedsearch(
        "run", str(path), "--warm-start", "nope", "--warm-start-storage", earlier.storage_url
    )
    assert bad.returncode == 2 and "no study named 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr
    good = fedsearch(
        "run", str(path), "--warm-start", "tiny", "--warm-start-storage", earlier.storage_url
    )
    assert good.returncode == 0, good.stderr
    stored = optuna.load_study(
        study_name="later", storage=resolve_study(path, registry).storage_url
    )
    assert any(WARM_START_ATTR in t.user_attrs for t in stored.trials)
