"""Client-level DP: DP-FedAvg and local DP, accounted by dp-accounting from the records."""

from __future__ import annotations

import dp_accounting
import numpy as np
import optuna
import pytest
import torch
from dp_accounting import pld, rdp
from fedsearch_builtins.middleware import update_norm
from fedsearch_builtins.privacy import DpFedAvg, DpFedAvgParams, LocalDp, LocalDpParams

from fedsearch import (
    ClientUpdate,
    ConfigError,
    PayloadContext,
    ServerRound,
    resolve_study,
    run_study,
)
from fedsearch.config import FederationConfig
from fedsearch.federated import FederatedRun, run_federated
from fedsearch.testing._rounds import tiny_data
from tests._studies import DROP, tiny_space, tiny_study, write_study

NO_DISTILL = tiny_space(slots={"distill": ["none"], "prune": ["none"], "quantize": ["none"]})
RECORDED = {"epsilon", "delta", "noise_multiplier", "clip_norm", "sampling_rate", "sampling"}


def dp_study(folder, registry, strategy=None, middleware=(), **search):
    federation = {"num_clients": 8, "rounds": 3, "fraction": 0.5}
    if strategy is not None:
        federation["strategy"] = strategy
    federation["middleware"] = list(middleware)
    study = tiny_study(teacher=DROP, federation=federation, search={"n_trials": 1, **search})
    return resolve_study(write_study(folder, study, NO_DISTILL), registry)


def accounted(attrs: dict) -> float:
    """dp-accounting's epsilon rebuilt from the recorded attributes alone (not fedsearch code)."""
    z, rounds = attrs["noise_multiplier"], attrs["rounds"]
    if attrs["dp"]["level"] == "local":
        event = dp_accounting.GaussianDpEvent(z / 2)
        relation = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    elif attrs["sampling"] == "poisson":
        event = dp_accounting.PoissonSampledDpEvent(
            attrs["sampling_rate"], dp_accounting.GaussianDpEvent(z)
        )
        relation = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    else:
        size = round(attrs["sampling_rate"] * attrs["dp"]["num_clients"])
        event = dp_accounting.SampledWithoutReplacementDpEvent(
            attrs["dp"]["num_clients"], size, dp_accounting.GaussianDpEvent(z / 2)
        )
        relation = dp_accounting.NeighboringRelation.REPLACE_ONE
    if attrs["accountant"] == "pld":
        accountant = pld.PLDAccountant(relation)
    else:
        accountant = rdp.RdpAccountant(neighboring_relation=relation)
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
    return accountant.get_epsilon(attrs["delta"])


@pytest.mark.parametrize(
    ("sampling", "accountant"), [("poisson", "rdp"), ("poisson", "pld"), ("fixed_size", "rdp")]
)
def test_recorded_epsilon_is_dp_accounting_s_from_the_recorded_parameters(
    tmp_path, registry, sampling, accountant
):
    params = {"noise_multiplier": 1.3, "clip_norm": 0.7, "sampling": sampling}
    params |= {"accountant": accountant, "delta": 1e-4}
    resolved = dp_study(tmp_path, registry, {"name": "dp_fedavg", "params": params})
    (trial,) = run_study(resolved).trials
    attrs = trial.user_attrs
    assert RECORDED | {"accountant", "rounds"} <= set(attrs)
    assert (attrs["sampling"], attrs["accountant"], attrs["rounds"]) == (sampling, accountant, 3)
    assert (attrs["noise_multiplier"], attrs["clip_norm"], attrs["delta"]) == (1.3, 0.7, 1e-4)
    assert attrs["sampling_rate"] == 0.5  # 4 of 8 clients, or each with probability 0.5
    assert attrs["epsilon"] == pytest.approx(accounted(attrs), rel=1e-9)
    assert 0.5 < attrs["epsilon"] < 20


def test_local_dp_is_accounted_without_amplification(tmp_path, registry):
    middleware = [{"name": "local_dp", "params": {"noise_multiplier": 4.0, "accountant": "pld"}}]
    resolved = dp_study(tmp_path, registry, middleware=middleware)
    (trial,) = run_study(resolved).trials
    attrs = trial.user_attrs
    assert attrs["dp"]["level"] == "local" and attrs["accountant"] == "pld"
    assert attrs["epsilon"] == pytest.approx(accounted(attrs), rel=1e-9)


def test_pld_with_fixed_size_sampling_is_refused_before_the_study_exists(tmp_path, registry):
    params = {"sampling": "fixed_size", "accountant": "pld"}
    with pytest.raises(ConfigError, match=r"federation.strategy.*PLD.*poisson"):
        dp_study(tmp_path, registry, {"name": "dp_fedavg", "params": params})
    assert not (tmp_path / "runs" / "fedsearch.db").exists()


def test_epsilon_objective_and_constraint_need_a_private_run(tmp_path, registry):
    with pytest.raises(ConfigError, match=r"search.objectives.*dp_fedavg"):
        dp_study(tmp_path / "a", registry, objectives=[{"name": "epsilon"}])
    with pytest.raises(ConfigError, match=r"max_epsilon.*local_dp"):
        dp_study(tmp_path / "b", registry, constraints={"max_epsilon": 3.0})


def test_searched_noise_is_recorded_and_epsilon_is_an_objective_and_a_limit(tmp_path, registry):
    space = {
        **NO_DISTILL,
        "slots": {**NO_DISTILL["slots"], "strategy": ["dp_fedavg"]},
        "dimensions": {
            **NO_DISTILL["dimensions"],
            "strategy.dp_fedavg.noise_multiplier": {"low": 0.5, "high": 3.0, "log": True},
            "strategy.dp_fedavg.clip_norm": {"choices": [0.5, 2.0]},
        },
    }
    search = {"n_trials": 3, "objectives": [{"name": "epsilon"}]}
    search["constraints"] = {"max_epsilon": 10.0}
    federation = {"num_clients": 8, "rounds": 3, "fraction": 0.5}
    study = tiny_study(teacher=DROP, federation=federation, search=search)
    resolved = resolve_study(write_study(tmp_path, study, space), registry)
    trials = run_study(resolved).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 3
    for trial in trials:
        attrs = trial.user_attrs
        assert attrs["noise_multiplier"] == trial.params["strategy.dp_fedavg.noise_multiplier"]
        assert attrs["clip_norm"] == trial.params["strategy.dp_fedavg.clip_norm"]
        assert trial.values[3] == attrs["epsilon"] == pytest.approx(accounted(attrs))
        limit = attrs["constraints"]["max_epsilon"]
        assert limit == pytest.approx(attrs["epsilon"] / 10.0 - 1)
        assert limit <= 0 or attrs["feasible"] is False
        assert attrs["selection"]["strategy"]["name"] == "dp_fedavg"
    # more noise, less epsilon
    ordered = sorted(trials, key=lambda t: t.user_attrs["noise_multiplier"])
    assert ordered[0].values[3] > ordered[-1].values[3]


def round_of(index: int, fraction: float, seed: int = 0) -> ServerRound:
    return ServerRound(index, 10, fraction, np.random.default_rng(seed))


def update(client: int, vector: list[float]) -> ClientUpdate:
    return ClientUpdate(client, 10, {"w": torch.tensor(vector)})


def test_without_noise_dp_fedavg_is_the_sum_of_clipped_updates_over_the_expected_count():
    strategy = DpFedAvg(DpFedAvgParams(noise_multiplier=0.0, clip_norm=1.0))
    strategy.select_clients(4, round_of(0, 0.5))  # expected clients: 0.5 * 4 = 2
    updates = [update(0, [3.0, 4.0]), update(1, [0.3, 0.4])]  # norms 5 (clipped) and 0.5
    new = strategy.aggregate({"w": torch.zeros(2)}, updates, round_of(0, 0.5))
    assert new["w"].tolist() == pytest.approx([(0.6 + 0.3) / 2, (0.8 + 0.4) / 2])


def test_central_noise_has_the_calibrated_spread_and_comes_from_the_round_seed():
    params = DpFedAvgParams(noise_multiplier=2.0, clip_norm=0.5)
    draws = []
    for _ in range(2):
        strategy = DpFedAvg(params)
        strategy.select_clients(100, round_of(0, 0.1))
        state = torch.random.get_rng_state()
        new = strategy.aggregate({"w": torch.zeros(200_000)}, [], round_of(0, 0.1, seed=7))
        assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
        draws.append(new["w"])
    assert torch.equal(draws[0], draws[1])
    assert float(draws[0].std()) == pytest.approx(2.0 * 0.5 / 10, rel=0.01)  # z C / (q N)


def test_poisson_sampling_draws_each_client_independently_and_fixed_size_draws_exactly_m():
    poisson = DpFedAvg(DpFedAvgParams(sampling="poisson"))
    rng_round = ServerRound(0, 1, 0.3, np.random.default_rng(1))
    sizes = [len(poisson.select_clients(50, rng_round)) for _ in range(400)]
    assert np.mean(sizes) == pytest.approx(15, rel=0.03) and len(set(sizes)) > 5
    fixed = DpFedAvg(DpFedAvgParams(sampling="fixed_size", accountant="rdp"))
    assert {len(fixed.select_clients(50, rng_round)) for _ in range(50)} == {15}


def test_an_empty_poisson_round_adds_only_noise():
    strategy = DpFedAvg(DpFedAvgParams(noise_multiplier=0.0))
    strategy.select_clients(10, round_of(0, 0.2))
    new = strategy.aggregate({"w": torch.ones(3)}, [], round_of(0, 0.2))
    assert new["w"].tolist() == [1.0, 1.0, 1.0]


def test_adaptive_clipping_follows_the_update_norms():
    strategy = DpFedAvg(DpFedAvgParams(noise_multiplier=0.0, clip_norm=0.1, adaptive=True))
    strategy.select_clients(10, round_of(0, 1.0))
    updates = [update(k, [3.0 + k / 10, 0.0]) for k in range(10)]  # norms 3.0 .. 3.9
    for index in range(60):
        strategy.aggregate({"w": torch.zeros(2)}, updates, round_of(index, 1.0, seed=index))
    assert 3.0 < strategy.clip_norm < 3.9  # the median norm, up from 0.1


def test_adaptive_clipping_raises_the_update_noise_to_pay_for_the_count():
    strategy = DpFedAvg(
        DpFedAvgParams(noise_multiplier=1.0, adaptive=True, clipped_count_stddev=2.0)
    )
    assert strategy.update_noise_multiplier(10.0) == pytest.approx((1 - 1 / 16) ** -0.5)


def test_local_dp_clips_then_adds_seeded_noise():
    middleware = LocalDp(LocalDpParams(noise_multiplier=0.5, clip_norm=1.0))
    payload = {"w": torch.full((100_000,), 3.0)}
    context = PayloadContext(round=0, client=2, seed=11)
    noisy = middleware.on_client_send(payload, context)
    again = middleware.on_client_send(payload, context)
    assert torch.equal(noisy["w"], again["w"])
    clipped_value = 1.0 / np.sqrt(100_000)
    assert float(noisy["w"].mean()) == pytest.approx(clipped_value, abs=0.01)
    assert float(noisy["w"].std()) == pytest.approx(0.5, rel=0.01)
    assert float(update_norm(payload)) > 900  # the input is left alone


def test_a_run_survives_poisson_rounds_without_clients(registry):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(40, 6, generator=generator)
    data = tiny_data(inputs, (inputs[:, 0] > 0).long(), 2, 4)
    run = FederatedRun(
        data=data,
        federation=FederationConfig(num_clients=4, rounds=3, fraction=0.05),
        strategy=registry.create("strategy", "dp_fedavg", {"noise_multiplier": 0.0}),
        downlink_codec=registry.create("codec", "float32"),
        uplink_codec=registry.create("codec", "float32"),
        seed=0,
    )
    history = run_federated(torch.nn.Linear(6, 2), run).history
    losses = [record.train_loss for record in history]
    assert np.isnan(losses[1]) and history[1].uplink_bytes == 0  # round 2 drew nobody
    assert np.isfinite(losses[0]) and np.isfinite(losses[2])
