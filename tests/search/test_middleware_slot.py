"""The ``middleware`` search slot: a searched component after ``federation.middleware``."""

from __future__ import annotations

import optuna
import pytest

from fedsearch import resolve_study, run_study
from fedsearch.cli._main import main
from fedsearch.search import ComponentChoice, Selection
from fedsearch.study import prepare_runtime
from tests._studies import DROP, tiny_space, tiny_study, write_study
from tests.builtins.test_privacy import accounted

NO_COMPRESSION = {"distill": ["none"], "prune": ["none"], "quantize": ["none"]}
LOCAL_DP_SPACE = tiny_space(
    slots={**NO_COMPRESSION, "middleware": ["local_dp"]},
    dimensions={
        "middleware.local_dp.noise_multiplier": {"low": 0.5, "high": 4.0, "log": True},
        "middleware.local_dp.clip_norm": {"low": 0.3, "high": 3.0, "log": True},
    },
)
FEDERATION = {"num_clients": 8, "rounds": 2, "fraction": 0.5}
EPSILON = {"objectives": [{"name": "epsilon"}]}


def local_dp_study(folder, space=LOCAL_DP_SPACE, *, federation=None, search=None, **changes):
    study = tiny_study(
        teacher=DROP,
        federation=federation or FEDERATION,
        search={"n_trials": 3, **(search or {})},
        **changes,
    )
    return write_study(folder, study, space)


def test_searched_local_dp_knobs_differ_by_trial_and_are_what_the_trial_accounts(
    tmp_path, registry
):
    resolved = resolve_study(local_dp_study(tmp_path, search=EPSILON), registry)
    trials = run_study(resolved).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 3
    noise = [trial.params["middleware.local_dp.noise_multiplier"] for trial in trials]
    clip = [trial.params["middleware.local_dp.clip_norm"] for trial in trials]
    assert len(set(noise)) == 3 and len(set(clip)) == 3
    for trial in trials:
        attrs = trial.user_attrs
        assert attrs["selection"]["middleware"]["name"] == "local_dp"
        assert attrs["noise_multiplier"] == trial.params["middleware.local_dp.noise_multiplier"]
        assert attrs["clip_norm"] == trial.params["middleware.local_dp.clip_norm"]
        assert attrs["dp"]["level"] == "local" and attrs["rounds"] == 2
        assert (attrs["sampling"], attrs["sampling_rate"]) == ("fixed_size", 1.0)
        assert (attrs["accountant"], attrs["delta"]) == ("rdp", 1e-5)  # local_dp's defaults
        assert trial.values[3] == attrs["epsilon"] == pytest.approx(accounted(attrs), rel=1e-9)
    ordered = sorted(trials, key=lambda trial: trial.user_attrs["noise_multiplier"])
    assert ordered[0].values[3] > ordered[-1].values[3]  # more noise, less epsilon


def test_the_searched_middleware_runs_after_the_configured_ones(tmp_path, registry):
    space = tiny_space(slots={**NO_COMPRESSION, "middleware": ["none", "local_dp"]})
    clip = {"name": "clip_update", "params": {"max_norm": 5.0}}
    path = local_dp_study(tmp_path, space, federation={**FEDERATION, "middleware": [clip]})
    runtime = prepare_runtime(resolve_study(path, registry))
    mlp = ComponentChoice("mlp", {"depth": 1, "widths": [16]})
    noise = ComponentChoice("local_dp", {"noise_multiplier": 2.5, "clip_norm": 0.4})
    searched = runtime.federated_run(Selection(mlp, {}, middleware=noise)).middleware
    assert [item.name for item in searched] == ["clip_update", "local_dp"]
    assert (searched[1].params.noise_multiplier, searched[1].params.clip_norm) == (2.5, 0.4)
    switched_off = runtime.federated_run(Selection(mlp, {})).middleware  # "none" chosen
    assert [item.name for item in switched_off] == ["clip_update"]


DIMENSIONS = LOCAL_DP_SPACE["dimensions"]
REFUSED = {
    "misspelt dimension": (
        {},
        tiny_space(
            slots={**NO_COMPRESSION, "middleware": ["local_dp"]},
            dimensions={"middleware.local_dp.clip_nrom": {"low": 0.1, "high": 1.0}},
        ),
        ["dimensions.middleware.local_dp.clip_nrom", "'middleware.local_dp.clip_norm'"],
    ),
    "dimension of configured middleware": (
        {
            "federation": {**FEDERATION, "middleware": [{"name": "local_dp"}]},
            "search": {"dimensions": DIMENSIONS},
        },
        tiny_space(slots=NO_COMPRESSION),
        ["search.dimensions.middleware.local_dp", 'add middleware = ["local_dp"]'],
    ),
    "dimension of the configured strategy": (
        {
            "federation": {**FEDERATION, "strategy": {"name": "dp_fedavg"}},
            "search": {"dimensions": {"strategy.dp_fedavg.clip_norm": {"low": 0.1, "high": 1}}},
        },
        tiny_space(slots=NO_COMPRESSION),
        ["search.dimensions.strategy.dp_fedavg", 'add strategy = ["dp_fedavg"]'],
    ),
    "a strategy in the middleware slot": (
        {},
        tiny_space(slots={**NO_COMPRESSION, "middleware": ["dp_fedavg"]}),
        ["slots.middleware", "dp_fedavg"],
    ),
    "epsilon with a trial without DP": (
        {"search": EPSILON},
        tiny_space(slots={**NO_COMPRESSION, "middleware": ["none", "local_dp"]}),
        ["search.objectives", "also tries 'none'"],
    ),
    "two DP mechanisms": (
        {"federation": {**FEDERATION, "strategy": {"name": "dp_fedavg"}}},
        LOCAL_DP_SPACE,
        ["search.slots.middleware", "searched 'local_dp' would run beside 'dp_fedavg'"],
    ),
    "two configured DP mechanisms": (
        {
            "federation": {
                **FEDERATION,
                "strategy": {"name": "dp_fedavg"},
                "middleware": [{"name": "local_dp"}],
            }
        },
        tiny_space(slots=NO_COMPRESSION),
        ["federation.middleware", "'dp_fedavg' and 'local_dp' would both run"],
    ),
    "a searched DP strategy beside configured DP middleware": (
        {"federation": {**FEDERATION, "middleware": [{"name": "local_dp"}]}},
        tiny_space(slots={**NO_COMPRESSION, "strategy": ["fedavg", "dp_fedavg"]}),
        ["federation.middleware", "'local_dp' and 'dp_fedavg' would both run"],
    ),
    "a teacher trained without DP": (
        {"teacher": {"architecture": {"name": "mlp"}, "rounds": 1}},
        LOCAL_DP_SPACE,
        ["teacher", "without differential privacy"],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_invalid_middleware_searches_exit_2_in_one_line_before_storage(tmp_path, capsys, case):
    changes, space, fragments = REFUSED[case]
    path = write_study(tmp_path, tiny_study(**{"teacher": DROP, **changes}), space)
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in line
    assert not (tmp_path / "runs").exists()
