"""``MiddlewareTestCase``: the conformance suite every middleware's tests subclass."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from fedsearch.components import Middleware, PayloadContext, Weights
from fedsearch.federated import MiddlewareChain
from fedsearch.federated._middleware_chain import HOOKS
from fedsearch.testing._declared import assert_declares_name_and_params
from fedsearch.testing._rounds import run_tiny_federation, tiny_data


class MiddlewareTestCase:
    """Contract tests for a :class:`~fedsearch.Middleware`; subclass it in your tests.

    Set ``middleware_class`` (and ``params``); pytest collects the inherited
    ``test_*`` methods. They check that every hook keeps the payload's names,
    shapes and dtypes without changing its input; that real federated rounds
    with the middleware train on both execution paths (sequential and
    vectorized) to the same, finite weights, deterministically and without
    touching the global RNG; and that a client's state is its own.

    Example::

        from fedsearch.testing import MiddlewareTestCase
        from my_plugin import AddNoise

        class TestAddNoise(MiddlewareTestCase):
            middleware_class = AddNoise
            params = {"sigma": 0.01}

    Attributes:
        middleware_class: The middleware under test.
        params: Its params (defaults when empty).
        num_rounds: Rounds of the tiny federation.
        path_tolerance: Largest allowed difference between the weights the
            sequential and vectorized federations train.
    """

    middleware_class: ClassVar[type[Middleware]]
    params: ClassVar[dict[str, Any]] = {}
    num_rounds: ClassVar[int] = 3
    path_tolerance: ClassVar[float] = 1e-4

    def make_middleware(self) -> Middleware:
        """The middleware, with its params validated by its ``Params`` model."""
        return self.middleware_class(self.middleware_class.Params(**self.params))

    def payload(self) -> Weights:
        """A model-shaped payload with a few tensor kinds."""
        generator = torch.Generator().manual_seed(0)
        return {
            "0.weight": torch.randn(6, 4, generator=generator),
            "0.bias": torch.randn(6, generator=generator),
            "bn.num_batches_tracked": torch.tensor(3),
        }

    def federate(self, execution: str) -> tuple[Weights, bool]:
        """Real rounds with the middleware; the final weights and whether the RNG was untouched."""
        with torch.random.fork_rng():  # the caller's global RNG stays as it was
            torch.manual_seed(0)
            model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
        generator = torch.Generator().manual_seed(0)
        inputs = torch.randn(30, 6, generator=generator)
        labels = torch.randint(0, 3, (30,), generator=generator)
        before = torch.get_rng_state()
        result = run_tiny_federation(
            model,
            tiny_data(inputs, labels, 3, 5),
            rounds=self.num_rounds,
            execution=execution,
            middleware=[self.make_middleware()],
        )
        return result.weights, torch.equal(before, torch.get_rng_state())

    def test_declares_name_and_params(self) -> None:
        """A non-empty name and a ComponentParams model accepting the params."""
        cls = self.middleware_class
        assert_declares_name_and_params(cls, self.params)

    def test_hooks_keep_names_shapes_dtypes_and_their_input(self) -> None:
        """Each hook returns the same names, shapes and dtypes and leaves its input alone."""
        middleware = self.make_middleware()
        for client in (None, 3):
            for hook in HOOKS:
                payload = self.payload()
                copy = {name: tensor.clone() for name, tensor in payload.items()}
                state = middleware.client_state(3) if client is not None else None
                out = getattr(middleware, hook)(payload, PayloadContext(0, client, 11, state))
                assert set(out) == set(payload), f"{hook} must keep every tensor name"
                for name, tensor in out.items():
                    assert tensor.shape == payload[name].shape, f"{hook} reshaped {name}"
                    assert tensor.dtype == payload[name].dtype, f"{hook} changed {name}'s dtype"
                    assert torch.equal(payload[name], copy[name]), f"{hook} modified its input"

    def test_trains_in_real_rounds_on_both_execution_paths(self) -> None:
        """Sequential and vectorized federations train the same finite weights."""
        sequential, _ = self.federate("sequential")
        vectorized, _ = self.federate("vectorized")
        for name, tensor in sequential.items():
            assert torch.isfinite(tensor).all(), f"{name} is not finite"
            difference = (tensor - vectorized[name]).abs().max().item()
            assert difference <= self.path_tolerance, f"{name}: paths differ by {difference}"

    def test_same_seed_same_weights_and_the_global_rng_alone(self) -> None:
        """Deterministic rounds whose randomness comes from ``PayloadContext.generator``."""
        first, untouched = self.federate("sequential")
        second, _ = self.federate("sequential")
        assert untouched, "the middleware changed the global RNG; use context.generator()"
        assert all(torch.equal(first[name], second[name]) for name in first)

    def test_state_of_one_client_never_reaches_another(self) -> None:
        """Client 5's output is the same whether or not client 3 went first."""

        def client_five(first: list[int]) -> tuple[Weights, MiddlewareChain]:
            chain = MiddlewareChain([self.make_middleware()], seed=0)
            for round_index in range(2):
                for client in [*first, 5]:
                    out = chain.apply(
                        "on_client_send", self.payload(), round_index=round_index, client=client
                    )
            return out, chain

        alone, _ = client_five([])
        after_three, chain = client_five([3])
        for name, tensor in alone.items():
            assert torch.equal(tensor, after_three[name]), f"client 3 changed client 5's {name}"
        for three, five in zip(chain.states.of(3), chain.states.of(5), strict=True):
            assert three is None or three is not five, "clients 3 and 5 share a state object"
