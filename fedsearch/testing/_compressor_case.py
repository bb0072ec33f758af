"""``CompressorTestCase``: the conformance suite every compressor's tests subclass."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from fedsearch._errors import ConfigError, PluginError
from fedsearch.artifact import ModelSpec
from fedsearch.components import (
    FACTORY_ARCHITECTURE,
    STAGES,
    Batch,
    CompressionContext,
    Compressor,
    ModelFactory,
    StepContext,
    Teacher,
    Weights,
    can_vectorize,
)
from fedsearch.host import ComponentRegistry, get_registry, with_factories
from fedsearch.testing._client_isolation import ClientIsolationChecks
from fedsearch.testing._declared import assert_declares_name_and_params
from fedsearch.testing._rounds import run_tiny_federation, tiny_data
from fedsearch.trial import build_artifact, load_model


class CompressorTestCase(ClientIsolationChecks):
    """Contract tests for a :class:`~fedsearch.Compressor`; subclass it in your tests.

    Set ``compressor_class`` (and ``params`` for non-default knobs); pytest
    collects the inherited ``test_*`` methods. Each runs the compressor through
    a short simulated federated lifecycle on a tiny built-in model and checks
    what fedsearch relies on: declared name, stage and params; a forward pass
    that stays differentiable; weights that keep their shapes unless the model
    changes with them; an artifact that loads back into a model computing
    exactly what the last round's forward pass computed; real federated rounds
    on every execution path (sequential; vectorized under ``torch.func.vmap``
    unless the class sets ``vectorizable = False``; worker processes) that
    agree, leave the global RNG alone, and keep each client's state its own.

    Example::

        from fedsearch.testing import CompressorTestCase
        from my_plugin import MyPruner

        class TestMyPruner(CompressorTestCase):
            compressor_class = MyPruner
            params = {"sparsity": 0.5}

    Attributes:
        compressor_class: The compressor under test.
        params: Its params (defaults when empty).
        architecture: Built-in architecture of the tiny student (``mlp`` or ``cnn``).
        architecture_params: Its params.
        model_factory: Your own ``build(input_shape, num_classes) -> nn.Module``
            to test on instead (any module of common layers); its artifact is
            loaded through the ``factory`` architecture.
        input_shape: Shape of one example.
        num_rounds: Rounds of the simulated lifecycle.
        teacher_architecture: ``(name, params)`` of the teacher handed to the
            compressor, or None for no teacher (distillers need one).
        output_tolerance: Largest allowed difference between the decoded
            model's outputs and the trained forward pass.
        path_tolerance: Largest allowed difference between the weights the
            sequential and the vectorized rounds train.
    """

    compressor_class: ClassVar[type[Compressor]]
    params: ClassVar[dict[str, Any]] = {}
    architecture: ClassVar[str] = "cnn"
    architecture_params: ClassVar[dict[str, Any]] = {"channels": [4, 8], "hidden": 16}
    model_factory: ClassVar[ModelFactory | None] = None
    input_shape: ClassVar[tuple[int, ...]] = (1, 8, 8)
    num_classes: ClassVar[int] = 3
    num_examples: ClassVar[int] = 24
    num_rounds: ClassVar[int] = 4
    teacher_architecture: ClassVar[tuple[str, dict[str, Any]] | None] = None
    output_tolerance: ClassVar[float] = 1e-5
    path_tolerance: ClassVar[float] = 1e-4
    num_clients: ClassVar[int] = 6

    # --- helpers (override to adapt) -------------------------------------------------

    def make_compressor(self) -> Compressor:
        """The compressor, with its params validated by its ``Params`` model."""
        return self.compressor_class(self.compressor_class.Params(**self.params))

    def registry(self) -> ComponentRegistry:
        """The installed components; bound to ``model_factory`` when there is one."""
        factory = type(self).model_factory
        if factory is None:
            return get_registry()
        return with_factories(get_registry(), {self._factory_reference(): factory})

    def _factory_reference(self) -> str:
        factory = type(self).model_factory
        return f"{factory.__module__}:{factory.__name__}"

    def _architecture_choice(self) -> tuple[str, dict[str, Any]]:
        if type(self).model_factory is None:
            return self.architecture, dict(self.architecture_params)
        return FACTORY_ARCHITECTURE, {"factory": self._factory_reference()}

    def build_model(self, seed: int = 0) -> nn.Module:
        """A tiny student from ``model_factory``, else from the built-in ``architecture``."""
        family = self.registry().create("architecture", *self._architecture_choice())
        torch.manual_seed(seed)
        return family.build(self.input_shape, self.num_classes)

    def examples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed random inputs and labels."""
        generator = torch.Generator().manual_seed(0)
        inputs = torch.randn((self.num_examples, *self.input_shape), generator=generator)
        labels = torch.randint(0, self.num_classes, (self.num_examples,), generator=generator)
        return inputs, labels

    def build_teacher(self) -> Teacher | None:
        """A tiny teacher (untrained: the contract does not depend on its quality)."""
        if self.teacher_architecture is None:
            return None
        name, params = self.teacher_architecture
        family = get_registry().create("architecture", name, params)
        torch.manual_seed(1)
        model = family.build(self.input_shape, self.num_classes).eval()
        inputs, _ = self.examples()
        with torch.no_grad():
            logits = model(inputs)
        weights = {key: value.detach().clone() for key, value in model.state_dict().items()}
        return Teacher(weights, logits, 0.0, 0.0, 0, model=model)

    def set_up(self, seed: int = 0) -> tuple[Compressor, nn.Module]:
        """A fresh model and a compressor set up for it (trial seed ``seed``)."""
        model = self.build_model(seed)
        compressor = self.make_compressor()
        teacher = self.build_teacher()
        compressor.setup(CompressionContext(model, self.num_rounds, teacher, seed=seed))
        return compressor, model

    def run_lifecycle(self, seed: int = 0) -> tuple[Compressor, nn.Module, Weights, torch.Tensor]:
        """Setup, then per round: ``on_round_start``, a few SGD steps through the hooks.

        Returns:
            The compressor, the (possibly restructured) model, the final
            weights and the logits of the final forward pass on all examples.
        """
        compressor, model = self.set_up(seed)
        weights = {key: value.detach().clone() for key, value in model.state_dict().items()}
        inputs, labels = self.examples()
        state = compressor.client_state(0)
        for round_index in range(self.num_rounds):
            compressor.on_round_start(weights, round_index)
            step = StepContext(round_index, 0, True, state)
            weights = self.local_step(compressor, model, weights, inputs, labels, step)
        compressor.on_round_start(weights, self.num_rounds)  # the server's view at the end
        with torch.no_grad():
            final = compressor.transform_parameters(
                weights, StepContext.evaluating(self.num_rounds)
            )
            logits = torch.func.functional_call(model.eval(), final, (inputs,))
        return compressor, model, weights, logits

    def local_step(
        self,
        compressor: Compressor,
        model: nn.Module,
        weights: Weights,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        step: StepContext,
    ) -> Weights:
        """One SGD step on every example through the compressor's hooks."""
        names = {name for name, _ in model.named_parameters()}
        local = {k: v.detach().clone().requires_grad_(k in names) for k, v in weights.items()}
        model.train()
        logits = torch.func.functional_call(
            model, compressor.transform_parameters(local, step), (inputs,)
        )
        batch = Batch(inputs, labels, torch.arange(len(labels)))
        loss = compressor.training_loss(F.cross_entropy(logits, labels), logits, batch, step)
        assert loss.ndim == 0 and torch.isfinite(loss), f"training_loss gave {loss}"
        trainable = [local[name] for name in local if name in names]
        gradients = torch.autograd.grad(loss, trainable, allow_unused=True)
        with torch.no_grad():
            for tensor, gradient in zip(trainable, gradients, strict=True):
                if gradient is not None:
                    assert torch.isfinite(gradient).all(), "non-finite gradient"
                    tensor.sub_(0.1 * gradient)
        return {name: tensor.detach() for name, tensor in local.items()}

    def artifact(self, compressor: Compressor, model: nn.Module, weights: Weights) -> bytes:
        """The artifact fedsearch would write for this trial."""
        name, params = self._architecture_choice()
        spec = ModelSpec(name, params, self.input_shape, self.num_classes)
        return build_artifact(
            spec,
            weights,
            [compressor],
            model=model,
            reference=self.build_model(),
            round_index=self.num_rounds,
        )

    def federate(
        self, execution: str, seed: int = 0, paths: set[str] | None = None
    ) -> tuple[Weights, bool]:
        """Real federated rounds on ``execution`` (the rounds must report one of
        ``paths``; by default ``execution`` itself).

        Returns:
            The final global weights, and whether the global RNG was left as it
            was before the compressor's ``setup``.
        """
        model, teacher = self.build_model(seed), self.build_teacher()
        before = torch.get_rng_state()
        compressor = self.make_compressor()
        compressor.setup(CompressionContext(model, self.num_rounds, teacher, seed=seed))
        inputs, labels = self.examples()
        data = tiny_data(inputs, labels, self.num_classes, self.num_clients)
        result = run_tiny_federation(
            model, data, rounds=self.num_rounds, execution=execution, compressors=[compressor]
        )
        ran = {record.execution for record in result.history}
        assert ran <= (paths or {execution}), f"asked for {execution}, ran {ran}"
        return result.weights, torch.equal(torch.get_rng_state(), before)

    # --- the contract ----------------------------------------------------------------

    def test_declares_name_stage_and_params(self) -> None:
        """A non-empty name, a known stage, a ComponentParams model accepting the params."""
        cls = self.compressor_class
        assert_declares_name_and_params(cls, self.params)
        assert cls.stage in STAGES, f"stage {cls.stage!r} is not one of {STAGES}"

    def test_forward_is_differentiable_and_keeps_names(self) -> None:
        """``transform_parameters`` keeps every name and passes gradients."""
        model = self.build_model()
        compressor = self.make_compressor()
        compressor.setup(CompressionContext(model, self.num_rounds, self.build_teacher()))
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        compressor.on_round_start(weights, self.num_rounds - 1)
        names = {name for name, _ in model.named_parameters()}
        params = {k: v.clone().requires_grad_(k in names) for k, v in weights.items()}
        step = StepContext(self.num_rounds - 1, 0, True, compressor.client_state(0))
        seen = compressor.transform_parameters(params, step)
        assert set(seen) == set(params), "transform_parameters must keep every tensor name"
        inputs, _ = self.examples()
        torch.func.functional_call(model, seen, (inputs,)).square().sum().backward()
        assert any(params[name].grad is not None for name in names), "no gradient reaches weights"

    def test_lifecycle_keeps_weights_consistent_with_the_model(self) -> None:
        """After every round the weights still fit the (possibly restructured) model."""
        _, model, weights, logits = self.run_lifecycle()
        expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
        assert {name: tuple(t.shape) for name, t in weights.items()} == expected
        assert torch.isfinite(logits).all()

    def test_artifact_reproduces_the_trained_forward_pass(self) -> None:
        """The artifact decodes into a model computing what the compressed forward pass did."""
        compressor, model, weights, logits = self.run_lifecycle()
        data = self.artifact(compressor, model, weights)
        decoded = load_model(data, self.registry())
        inputs, _ = self.examples()
        with torch.no_grad():
            difference = (decoded(inputs) - logits).abs().max().item()
        assert difference <= self.output_tolerance, (
            f"decoded model differs from the trained forward pass by {difference}"
        )

    def test_same_seed_same_artifact(self) -> None:
        """Determinism: the same lifecycle writes the same bytes."""
        first = self.artifact(*self.run_lifecycle()[:3])
        second = self.artifact(*self.run_lifecycle()[:3])
        assert first == second

    def test_trains_in_real_rounds_on_both_execution_paths(self) -> None:
        """Sequential and vectorized rounds train the same weights, or vmap is declined."""
        sequential, _ = self.federate("sequential")
        batch_norms = nn.modules.batchnorm._NormBase
        has_batch_norm = any(isinstance(m, batch_norms) for m in self.build_model().modules())
        if not can_vectorize(self.compressor_class) or has_batch_norm:
            with pytest.raises(ConfigError, match="vmap"):
                self.federate("vectorized")
            return
        try:
            vectorized, _ = self.federate("vectorized")
        except PluginError as error:
            pytest.fail(
                f"{self.compressor_class.__name__} is not vmap-safe: {error}. Fix its per-step "
                "hooks, or set `vectorizable = False` and execution 'auto' trains it sequentially"
            )
        for name, tensor in sequential.items():
            difference = (tensor - vectorized[name]).abs().max().item()
            assert difference <= self.path_tolerance, (
                f"{name}: vectorized and sequential rounds differ by {difference}"
            )

    def test_rounds_leave_the_global_rng_alone(self) -> None:
        """Setup and real rounds draw from their own generators, never torch's global one."""
        _, untouched = self.federate("sequential")
        assert untouched, (
            "the compressor changed the global RNG; seed a torch.Generator from "
            "CompressionContext.client_generator(client) or context.seed instead"
        )

    def test_trains_the_same_in_worker_processes(self) -> None:
        """Real rounds in ``parallel`` workers end where sequential rounds end.

        A compressor that does not pickle (it holds live objects such as
        forward hooks) or keeps per-client state trains in-process instead; the
        rounds then report ``sequential``, and this checks that fallback.
        """
        sequential, _ = self.federate("sequential")
        parallel, _ = self.federate("parallel", paths={"parallel", "sequential"})
        for name, tensor in sequential.items():
            difference = (tensor - parallel[name]).abs().max().item()
            assert difference <= self.path_tolerance, (
                f"{name}: parallel and sequential rounds differ by {difference}"
            )
