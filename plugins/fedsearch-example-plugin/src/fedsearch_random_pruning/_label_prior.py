"""A stateful compressor: logit adjustment by each client's own label frequencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch.nn import functional as F

from fedsearch import (
    Batch,
    ComponentParams,
    CompressionContext,
    Compressor,
    SearchRange,
    StepContext,
)


@dataclass
class LabelCounts:
    """One client's running count of the labels it trained on."""

    counts: torch.Tensor | None = None


class LogitAdjustmentParams(ComponentParams):
    """Knobs of logit adjustment."""

    tau: Annotated[float, Field(ge=0.0, le=10.0), SearchRange(0.0, 2.0, step=0.25)] = 1.0
    """Strength: the logits are shifted by ``tau * log(prior)``."""


class LogitAdjustment(Compressor):
    """Cross-entropy on ``logits + tau * log(prior_k)`` (Menon et al. 2021, as in FedLC).

    ``prior_k`` is client ``k``'s own label distribution, counted over the
    batches it has trained on (Laplace-smoothed): per-client state, which the
    runtime keeps for that client alone. Under non-IID partitions it stops a
    client's local model from drifting toward its majority labels. The
    adjustment only shapes training; evaluation and the artifact use the plain
    logits. It replaces the plain cross-entropy part of the loss, keeping
    whatever earlier stages added.
    """

    name = "logit_adjust"
    stage = "distill"
    description = "per-client logit adjustment by the client's label prior (stateful)"
    Params = LogitAdjustmentParams

    def setup(self, context: CompressionContext) -> None:
        """Nothing to prepare: the counts are per client."""

    def client_state(self, client: int) -> LabelCounts:
        """A client starts with no labels counted."""
        return LabelCounts()

    def training_loss(
        self, loss: torch.Tensor, logits: torch.Tensor, batch: Batch, step: StepContext
    ) -> torch.Tensor:
        """Count the batch's labels, then use the adjusted cross-entropy."""
        state: LabelCounts = step.state
        classes = logits.shape[-1]
        if state.counts is None:
            state.counts = torch.zeros(classes, device=logits.device)
        state.counts += torch.bincount(batch.targets, minlength=classes).to(state.counts.dtype)
        prior = (state.counts + 1.0) / (state.counts.sum() + classes)
        plain = F.cross_entropy(logits, batch.targets)
        adjusted = F.cross_entropy(logits + self.params.tau * prior.log(), batch.targets)
        return loss - plain + adjusted
