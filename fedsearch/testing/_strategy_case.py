"""``StrategyTestCase``: the conformance suite every strategy's tests subclass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from fedsearch.components import (
    ClientUpdate,
    Codec,
    DifferentiallyPrivate,
    DpParameters,
    ServerRound,
    Strategy,
    Weights,
    compose_codecs,
)
from fedsearch.host import get_registry
from fedsearch.testing._declared import assert_declares_name_and_params
from fedsearch.testing._rounds import run_tiny_federation, tiny_data

UPDATE_NORM = 0.1
"""L2 norm of the synthetic updates (below the default clip norms of the built-ins)."""


class StrategyTestCase:
    """Contract tests for a :class:`~fedsearch.Strategy`; subclass it in your tests.

    Set ``strategy_class`` (and ``params``); pytest collects the inherited
    ``test_*`` methods. They check that ``aggregate`` keeps names, shapes and
    dtypes, leaves its inputs and the global RNG alone and draws any noise from
    the round's generator; that clients who all send the same update move the
    model by that update (a ``server_optimizer`` moves it as it does for that
    one update alone; a differentially private strategy, one that subclasses
    ``DifferentiallyPrivate``, is checked for finite, seeded noise and its
    declared parameters instead); that clients' example counts weigh their
    updates when ``weighs_by_examples`` and change nothing otherwise; that
    ``select_clients`` picks distinct clients that exist; and that real tiny
    federations train with it on the sequential and vectorized paths, to the
    same changed, finite weights, and with sparsified, quantized updates.

    Example::

        from fedsearch.testing import StrategyTestCase
        from my_plugin import GeometricMedian

        class TestGeometricMedian(StrategyTestCase):
            strategy_class = GeometricMedian
            weighs_by_examples = False

    Attributes:
        strategy_class: The strategy under test.
        params: Its params (defaults when empty).
        server_optimizer: It steps along the aggregated update with a rule of
            its own (momentum, Adam), so the step differs from the update.
        weighs_by_examples: Each update counts in proportion to its client's
            ``num_examples`` (FedAvg); False: the counts change nothing.
        num_clients: Clients of the tiny federation.
        num_rounds: Its rounds.
        path_tolerance: Largest allowed difference between the weights the
            sequential and vectorized federations train.
    """

    strategy_class: ClassVar[type[Strategy]]
    params: ClassVar[dict[str, Any]] = {}
    server_optimizer: ClassVar[bool] = False
    weighs_by_examples: ClassVar[bool] = True
    num_clients: ClassVar[int] = 4
    num_rounds: ClassVar[int] = 3
    path_tolerance: ClassVar[float] = 1e-4

    # --- helpers (override to adapt) -------------------------------------------------

    def make_strategy(self) -> Strategy:
        """A fresh strategy, with its params validated by its ``Params`` model."""
        return self.strategy_class(self.strategy_class.Params(**self.params))

    @property
    def private(self) -> bool:
        """Whether the strategy declares itself differentially private (it adds noise)."""
        return issubclass(self.strategy_class, DifferentiallyPrivate)

    def server_round(self, seed: int = 0, index: int = 0) -> ServerRound:
        """Round ``index`` of ``num_rounds``, every client sampled, its generator seeded."""
        return ServerRound(index, self.num_rounds, 1.0, np.random.default_rng(seed))

    def global_weights(self) -> Weights:
        """The weights of a small MLP."""
        generator = torch.Generator().manual_seed(0)
        return {
            "0.weight": torch.randn(5, 6, generator=generator),
            "0.bias": torch.randn(5, generator=generator),
            "2.weight": torch.randn(3, 5, generator=generator),
            "2.bias": torch.randn(3, generator=generator),
        }

    def update(self, seed: int) -> Weights:
        """A random update of ``global_weights``'s shapes with L2 norm ``UPDATE_NORM``."""
        generator = torch.Generator().manual_seed(100 + seed)
        delta = {
            n: torch.randn(t.shape, generator=generator) for n, t in self.global_weights().items()
        }
        norm = torch.cat([t.flatten() for t in delta.values()]).norm()
        return {name: tensor * (UPDATE_NORM / norm) for name, tensor in delta.items()}

    def aggregate(
        self,
        updates: Sequence[tuple[int, Weights]],
        seed: int = 0,
        strategy: Strategy | None = None,
    ) -> Weights:
        """A fresh strategy's (or ``strategy``'s) aggregate of ``(num_examples, delta)`` pairs."""
        strategy = strategy or self.make_strategy()
        strategy.select_clients(self.num_clients, self.server_round(seed))  # as a round would
        client_updates = [
            ClientUpdate(client, count, delta) for client, (count, delta) in enumerate(updates)
        ]
        return strategy.aggregate(self.global_weights(), client_updates, self.server_round(seed))

    def assert_close(
        self, actual: Weights, expected: Weights, what: str, tol: float = 1e-6
    ) -> None:
        """Every tensor of ``actual`` within ``tol`` of ``expected``."""
        for name, tensor in expected.items():
            difference = (actual[name].double() - tensor.double()).abs().max().item()
            assert difference <= tol, f"{what}: {name} is {difference:.3g} off"

    def federate(
        self, execution: str, uplink_codec: Codec | None = None
    ) -> tuple[Weights, Weights]:
        """Real rounds with a fresh strategy; the initial and the final global weights."""
        with torch.random.fork_rng():  # the caller's global RNG stays as it was
            torch.manual_seed(0)
            model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
        initial = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        generator = torch.Generator().manual_seed(0)
        inputs = torch.randn(32, 6, generator=generator)
        labels = (inputs[:, :3].argmax(dim=1)).long()  # learnable: the largest of three features
        result = run_tiny_federation(
            model,
            tiny_data(inputs, labels, 3, self.num_clients),
            rounds=self.num_rounds,
            execution=execution,
            strategy=self.make_strategy(),
            uplink_codec=uplink_codec,
        )
        assert len(result.history) == self.num_rounds
        ran = {record.execution for record in result.history}
        assert ran == {execution}, f"asked for {execution}, ran {ran}"
        return initial, result.weights

    # --- the contract ----------------------------------------------------------------

    def test_declares_name_and_params(self) -> None:
        """A non-empty name and a ComponentParams model accepting the params."""
        cls = self.strategy_class
        assert_declares_name_and_params(cls, self.params)

    def test_selects_distinct_clients_that_exist(self) -> None:
        """``select_clients`` returns distinct client numbers below ``num_clients``."""
        strategy = self.make_strategy()
        for seed in range(3):
            server_round = ServerRound(0, self.num_rounds, 0.5, np.random.default_rng(seed))
            chosen = strategy.select_clients(10, server_round)
            assert all(isinstance(c, int) and 0 <= c < 10 for c in chosen), chosen
            assert len(set(chosen)) == len(chosen), f"a client was chosen twice: {chosen}"

    def test_aggregate_keeps_names_shapes_dtypes_and_leaves_its_inputs(self) -> None:
        """New weights like the old ones, finite; inputs and the global RNG untouched."""
        weights, updates = self.global_weights(), [(3, self.update(0)), (5, self.update(1))]
        before = torch.get_rng_state()
        strategy = self.make_strategy()
        strategy.select_clients(self.num_clients, self.server_round())
        client_updates = [ClientUpdate(k, n, delta) for k, (n, delta) in enumerate(updates)]
        new = strategy.aggregate(weights, client_updates, self.server_round())
        assert torch.equal(before, torch.get_rng_state()), (
            "aggregate changed the global RNG; seed a generator from server_round.rng"
        )
        assert list(new) == list(weights), "aggregate must keep every tensor name, in order"
        for name, tensor in weights.items():
            assert new[name].shape == tensor.shape and new[name].dtype == tensor.dtype, name
            assert torch.isfinite(new[name]).all(), f"{name} is not finite"
        self.assert_close(weights, self.global_weights(), "aggregate modified the weights", 0.0)
        for (_, delta), seed in zip(updates, (0, 1), strict=True):
            self.assert_close(delta, self.update(seed), "aggregate modified an update", 0.0)

    def test_identical_updates_move_the_model_by_that_update(self) -> None:
        """Clients that agree give their update (a server optimizer: its step for that update
        alone); a private strategy adds finite noise drawn from the round's generator."""
        delta = self.update(0)
        agreed = self.aggregate([(1, delta), (2, delta), (5, delta)])
        weights = self.global_weights()
        if self.private:
            assert all(torch.isfinite(t).all() for t in agreed.values())
            again = self.aggregate([(1, delta), (2, delta), (5, delta)])
            self.assert_close(again, agreed, "the same round generator gave other noise", 0.0)
            other = self.aggregate([(1, delta), (2, delta), (5, delta)], seed=1)
            params = self.make_strategy().dp_parameters(self.num_clients, 1.0, self.num_rounds)  # type: ignore[attr-defined]
            assert isinstance(params, DpParameters), "dp_parameters must return DpParameters"
            if params.noise_multiplier > 0:
                assert any(not torch.equal(other[n], agreed[n]) for n in agreed), (
                    "a private strategy's noise must come from server_round.rng"
                )
            return
        if self.server_optimizer:
            alone = self.aggregate([(8, delta)])
            self.assert_close(agreed, alone, "agreeing clients moved the model otherwise")
            assert any(not torch.equal(agreed[n], weights[n]) for n in weights), "nothing moved"
            return
        self.assert_close(agreed, {n: weights[n] + delta[n] for n in weights}, "w + update")

    def test_example_counts_weigh_the_updates_as_declared(self) -> None:
        """``weighs_by_examples``: 3 and 1 examples act as their weighted mean update, and
        swapping the counts changes the result; otherwise the counts change nothing."""
        first, second = self.update(0), self.update(1)
        weighted = self.aggregate([(3, first), (1, second)])
        if not self.weighs_by_examples:
            recounted = self.aggregate([(1, first), (7, second)])
            self.assert_close(recounted, weighted, "the example counts changed the aggregate")
            return
        mean = {name: 0.75 * first[name] + 0.25 * second[name] for name in first}
        self.assert_close(weighted, self.aggregate([(4, mean)]), "not the weighted mean update")
        swapped = self.aggregate([(1, first), (3, second)])
        assert any(not torch.allclose(swapped[n], weighted[n]) for n in weighted), (
            "the example counts change nothing; set weighs_by_examples = False"
        )

    def test_trains_in_real_rounds_on_both_execution_paths(self) -> None:
        """Sequential and vectorized federations change the model to the same finite weights."""
        initial, sequential = self.federate("sequential")
        _, vectorized = self.federate("vectorized")
        assert any(not torch.equal(sequential[n], initial[n]) for n in initial), "nothing trained"
        for name, tensor in sequential.items():
            assert torch.isfinite(tensor).all(), f"{name} is not finite"
            difference = (tensor - vectorized[name]).abs().max().item()
            assert difference <= self.path_tolerance, f"{name}: paths differ by {difference}"

    def test_aggregates_sparsified_and_quantized_updates(self) -> None:
        """Real rounds whose updates cross a top-k then QSGD uplink train finite weights."""
        registry = get_registry()
        stages = [
            registry.create("codec", "topk", {"fraction": 0.25}),
            registry.create("codec", "qsgd", {"levels": 4}),
        ]
        codec = compose_codecs(stages)  # type: ignore[arg-type]
        initial, weights = self.federate("sequential", uplink_codec=codec)
        assert any(not torch.equal(weights[n], initial[n]) for n in initial), "nothing trained"
        for name, tensor in weights.items():
            assert torch.isfinite(tensor).all(), f"{name} is not finite"
