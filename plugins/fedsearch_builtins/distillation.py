"""Soft-target knowledge distillation (Hinton et al. 2015)."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch.nn import functional as F

from fedsearch import (
    Batch,
    ComponentParams,
    CompressionContext,
    Compressor,
    ConfigError,
    Registrar,
    SearchRange,
    StepContext,
    Weights,
    hookimpl,
)


def soft_target_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, averaged over the batch."""
    return (
        F.kl_div(
            F.log_softmax(student_logits / temperature, dim=1),
            F.log_softmax(teacher_logits / temperature, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        * temperature**2
    )


class SoftTargetParams(ComponentParams):
    """Knobs of soft-target distillation."""

    temperature: Annotated[float, Field(gt=0.0, le=100.0), SearchRange(1.0, 20.0, log=True)] = 4.0
    alpha: Annotated[float, Field(ge=0.0, le=1.0), SearchRange(0.1, 0.9)] = 0.5
    """Weight of the soft-target term; ``1 - alpha`` weighs the hard-label loss."""


class SoftTargetDistillation(Compressor):
    """Clients match the teacher's temperature-softened outputs on their own data.

    Each participating client downloads the teacher once (counted by the
    channel) and runs it on its examples; the teacher's logits are computed once
    per study, which gives the same values.
    """

    name = "soft_target"
    stage = "distill"
    description = "soft-target distillation (temperature, alpha)"
    Params = SoftTargetParams

    def setup(self, context: CompressionContext) -> None:
        """Keep the teacher; a study without one cannot distil."""
        if context.teacher is None:
            raise ConfigError(
                "distillation needs a teacher; add a [teacher] table to the study file"
            )
        self.teacher = context.teacher

    def training_loss(
        self, loss: torch.Tensor, logits: torch.Tensor, batch: Batch, step: StepContext
    ) -> torch.Tensor:
        """Blend the hard-label loss with the soft-target loss."""
        soft = soft_target_loss(
            logits, self.teacher.train_logits[batch.indices], self.params.temperature
        )
        return self.params.alpha * soft + (1.0 - self.params.alpha) * loss

    def one_time_downloads(self) -> dict[str, Weights]:
        """The teacher's weights, once per participating client (charged with its training)."""
        return self.teacher.download()


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register soft-target distillation."""
    register.compressor(SoftTargetDistillation)
