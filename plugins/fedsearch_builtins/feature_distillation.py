"""Feature distillation: FitNets hints (Romero et al. 2015) and attention transfer
(Zagoruyko & Komodakis 2017), both on top of soft targets."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import torch
from pydantic import Field
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from fedsearch import (
    Batch,
    CompressionContext,
    ConfigError,
    Registrar,
    SearchRange,
    StepContext,
    hookimpl,
)
from fedsearch_builtins.distillation import SoftTargetDistillation, SoftTargetParams


class FeatureTap:
    """Keeps the output of chosen submodules (by path) from the latest forward pass.

    Call :meth:`refresh` after the model may have been restructured (structured
    pruning and low-rank factorisation replace submodules): it moves the hooks
    to the modules now at those paths.
    """

    def __init__(self, model: nn.Module, paths: list[str]) -> None:
        self.model = model
        self.paths = paths
        self.outputs: list[torch.Tensor | None] = [None] * len(paths)
        self._hooked: list[nn.Module | None] = [None] * len(paths)
        self._handles: list[torch.utils.hooks.RemovableHandle | None] = [None] * len(paths)
        self.refresh()

    def refresh(self) -> None:
        """Hook the modules currently at the tapped paths."""
        for index, path in enumerate(self.paths):
            module = self.model.get_submodule(path)
            if module is self._hooked[index]:
                continue
            handle = self._handles[index]
            if handle is not None:
                handle.remove()
            self._handles[index] = module.register_forward_hook(self._hook(index))
            self._hooked[index] = module

    def _hook(self, index: int) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def keep(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
            self.outputs[index] = output

        return keep


def hidden_layers(model: nn.Module, conv_only: bool = False) -> list[str]:
    """Paths of the Linear/Conv2d layers of ``model`` except the last (the classifier)."""
    kinds = (nn.Conv2d,) if conv_only else (nn.Linear, nn.Conv2d)
    layers = [
        (path, module)
        for path, module in model.named_modules()
        if isinstance(module, nn.Linear | nn.Conv2d)
    ]
    return [path for path, module in layers[:-1] if isinstance(module, kinds)]


class _FeatureDistillation(SoftTargetDistillation):
    """Soft targets plus a feature loss between student and teacher activations."""

    def setup(self, context: CompressionContext) -> None:
        """Keep the teacher and check it can run on client batches."""
        super().setup(context)
        if self.teacher.model is None:
            raise ConfigError(f"{self.name} distillation needs the teacher model")
        # A private copy: the study's teacher is shared by trials, the taps are not.
        self.teacher_model = copy.deepcopy(self.teacher.model).eval()

    def on_round_start(self, weights: dict[str, torch.Tensor], round_index: int) -> None:
        """Follow the student's layers if an earlier stage restructured the model."""
        self.student_tap.refresh()

    def teacher_features(self, batch: Batch) -> None:
        """Run the teacher on the client's batch (its taps keep the features)."""
        with torch.no_grad():
            self.teacher_model(batch.inputs)

    def training_loss(
        self, loss: torch.Tensor, logits: torch.Tensor, batch: Batch, step: StepContext
    ) -> torch.Tensor:
        """Soft-target blend plus ``beta`` times the feature loss."""
        self.teacher_features(batch)
        blended = super().training_loss(loss, logits, batch, step)
        return blended + self.params.beta * self.feature_loss(step)

    def feature_loss(self, step: StepContext) -> torch.Tensor:
        """The feature term, from the tapped student and teacher activations."""
        raise NotImplementedError


class FitNetsParams(SoftTargetParams):
    """Knobs of FitNets hints."""

    beta: Annotated[float, Field(ge=0.0, le=1e4), SearchRange(0.01, 10.0, log=True)] = 1.0
    """Weight of the hint loss."""
    hint_layer: int = -1
    """Which hidden layer (index among Linear/Conv2d layers but the classifier) of
    the student is guided, and which of the teacher guides it."""
    regressor_lr: Annotated[float, Field(gt=0.0, le=10.0)] = 0.05


@dataclass
class RegressorState:
    """One client's FitNets regressor, built on first use from the client's own generator."""

    generator: torch.Generator
    regressor: nn.Module | None = None
    input_shape: torch.Size | None = field(default=None)


def _initialised(layer: nn.Module, fan_in: int, generator: torch.Generator) -> nn.Module:
    """``layer`` with torch's default uniform bound ``1/sqrt(fan_in)``, drawn from ``generator``."""
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.uniform_(-bound, bound, generator=generator)
    return layer


class FitNetsDistillation(_FeatureDistillation):
    """FitNets: the student's hint layer, through a learned regressor, matches the teacher's.

    The regressor (a 1x1 convolution between feature maps, else a linear map of
    the flattened features) is trained with the hint loss by its own SGD step
    and is not part of the student, its artifact or its payloads. Each client
    keeps its own regressor (per-client state, seeded from the trial seed and
    the client id) across rounds; no client's batches train another's, and
    nothing about it crosses the channel.
    """

    name = "fitnets"
    description = "FitNets hints with a learned regressor, plus soft targets"
    Params = FitNetsParams

    def setup(self, context: CompressionContext) -> None:
        """Tap the hint layers and build the regressor for their shapes."""
        super().setup(context)
        student_layers, teacher_layers = (
            hidden_layers(context.model),
            hidden_layers(self.teacher_model),
        )
        if not student_layers or not teacher_layers:
            raise ConfigError("fitnets needs a hidden layer in both student and teacher")
        index = self.params.hint_layer
        try:
            self.student_tap = FeatureTap(context.model, [student_layers[index]])
            self.teacher_tap = FeatureTap(self.teacher_model, [teacher_layers[index]])
        except IndexError as exc:
            raise ConfigError(f"fitnets hint_layer {index} is out of range") from exc
        self.context = context

    def client_state(self, client: int) -> RegressorState:
        """A client's regressor holder, with a generator of its own."""
        return RegressorState(self.context.client_generator(client))

    @staticmethod
    def _build_regressor(
        student: torch.Tensor, teacher: torch.Tensor, generator: torch.Generator
    ) -> nn.Module:
        # skip_init and an explicit generator: the global RNG is never touched
        if student.ndim == 4 and teacher.ndim == 4:
            layer = torch.nn.utils.skip_init(nn.Conv2d, student.shape[1], teacher.shape[1], 1)
            return _initialised(layer, student.shape[1], generator)
        layer = torch.nn.utils.skip_init(nn.Linear, student[0].numel(), teacher[0].numel())
        return _initialised(layer, student[0].numel(), generator)

    def feature_loss(self, step: StepContext) -> torch.Tensor:
        """Mean squared error between the regressed student hint and the teacher's."""
        student, teacher = self.student_tap.outputs[0], self.teacher_tap.outputs[0]
        assert student is not None and teacher is not None
        state = step.state
        if not isinstance(state, RegressorState):
            raise ConfigError(
                "fitnets keeps a regressor per client and needs the client's state; "
                'train it sequentially (execution "auto" or "sequential")'
            )
        if state.regressor is None or state.input_shape != student.shape[1:]:
            # first use, or the student's hint layer was resized by structured pruning
            state.regressor = self._build_regressor(student, teacher, state.generator)
            state.input_shape = student.shape[1:]
        regressor = state.regressor
        # The forward uses copies, so the regressor's own SGD step below does not
        # disturb the student's backward pass through the same graph.
        copies = {k: v.detach().clone().requires_grad_() for k, v in regressor.named_parameters()}
        if isinstance(regressor, nn.Conv2d):
            regressed = functional_call(regressor, copies, (student,))
            if regressed.shape[-2:] != teacher.shape[-2:]:
                regressed = F.adaptive_avg_pool2d(regressed, teacher.shape[-2:])
        else:
            regressed = functional_call(regressor, copies, (student.flatten(1),))
            teacher = teacher.flatten(1)
        hint = F.mse_loss(regressed, teacher)
        if step.training:
            gradients = torch.autograd.grad(hint, list(copies.values()), retain_graph=True)
            with torch.no_grad():
                for parameter, gradient in zip(regressor.parameters(), gradients, strict=True):
                    parameter.sub_(self.params.regressor_lr * gradient)
        return hint


def attention_map(features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Zagoruyko & Komodakis: channel mean of squared activations, flattened, L2-normalised."""
    attention = features.pow(2).mean(dim=1, keepdim=True)
    if size is not None and attention.shape[-2:] != size:
        attention = F.adaptive_avg_pool2d(attention, size)
    return F.normalize(attention.flatten(1), dim=1)


class AttentionParams(SoftTargetParams):
    """Knobs of attention transfer."""

    beta: Annotated[float, Field(ge=0.0, le=1e5), SearchRange(10.0, 5000.0, log=True)] = 1000.0
    """Weight of the attention loss (the paper uses 1000)."""


class AttentionTransfer(_FeatureDistillation):
    """Attention transfer for CNNs: student conv attention maps match the teacher's.

    Student and teacher conv layers are paired in order (spread evenly when
    their counts differ); maps of different spatial size are average-pooled to
    the smaller one.
    """

    name = "attention"
    description = "attention transfer (CNN student and teacher), plus soft targets"
    Params = AttentionParams

    def setup(self, context: CompressionContext) -> None:
        """Pair and tap the conv layers of student and teacher."""
        super().setup(context)
        student = [p for p, m in context.model.named_modules() if isinstance(m, nn.Conv2d)]
        teacher = [p for p, m in self.teacher_model.named_modules() if isinstance(m, nn.Conv2d)]
        if not student or not teacher:
            raise ConfigError(
                "attention transfer needs convolutions in both student and teacher; "
                "use a CNN for both, or 'soft_target'/'fitnets'"
            )
        last = len(student) - 1
        pairs = [round(i * (len(teacher) - 1) / last) if last else len(teacher) - 1
                 for i in range(len(student))]  # fmt: skip
        self.student_tap = FeatureTap(context.model, student)
        self.teacher_tap = FeatureTap(self.teacher_model, [teacher[j] for j in pairs])

    def feature_loss(self, step: StepContext) -> torch.Tensor:
        """Sum over layer pairs of the mean squared attention-map difference."""
        total = torch.zeros(())
        for student, teacher in zip(
            self.student_tap.outputs, self.teacher_tap.outputs, strict=True
        ):
            assert student is not None and teacher is not None
            size = tuple(
                min(a, b) for a, b in zip(student.shape[-2:], teacher.shape[-2:], strict=True)
            )
            total = (
                total + (attention_map(student, size) - attention_map(teacher, size)).pow(2).mean()
            )
        return total


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register FitNets and attention transfer."""
    register.compressor(FitNetsDistillation)
    register.compressor(AttentionTransfer)
