"""Compressor components: pruning, quantization, distillation, low-rank factorisation."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from torch import nn

from fedsearch.components._base import Component, Weights

if TYPE_CHECKING:
    from fedsearch.artifact import QuantizedTensor

Stage = Literal["factorize", "prune", "quantize", "distill"]
STAGES: tuple[Stage, ...] = ("factorize", "prune", "quantize", "distill")
"""Compressor stages in the order their parameter transforms are applied."""


@dataclass(frozen=True)
class Batch:
    """One local training batch.

    Attributes:
        inputs: Examples of the batch.
        targets: Their labels.
        indices: Their positions in the training split (to look up per-example
            data such as teacher logits).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    indices: torch.Tensor


@dataclass(frozen=True)
class Teacher:
    """The dense model trained federatedly once per study.

    A trial that uses the teacher is charged what the teacher cost, as
    one-time bytes: its download by every participating client (counted by
    the channel, under the name ``DOWNLOAD``) and its federated training
    traffic, ``training_bytes``. A compressor that uses the teacher must list
    ``download()`` in its ``one_time_downloads``; that download is what marks
    the trial as using it.

    Attributes:
        weights: Its weights; what a client downloads to distil from it.
        train_logits: Its logits on every training example, computed once:
            each client would compute the same values for its own examples.
        val_accuracy: Accuracy on the validation split.
        test_accuracy: Accuracy on the test split.
        artifact_bytes: Length of its float32 artifact.
        model: The teacher as a module (evaluation mode), for compressors that
            run it on client batches (feature hints, attention transfer).
        training_bytes: Bytes its federated training moved through the
            channel, both directions, every round, as measured then. A teacher
            given as a pretrained file would have 0 here and be charged its
            download only (fedsearch has no such teacher source yet).
    """

    DOWNLOAD: ClassVar[str] = "teacher"
    """Name of the teacher's one-time download."""

    weights: Weights
    train_logits: torch.Tensor
    val_accuracy: float
    test_accuracy: float
    artifact_bytes: int
    model: nn.Module | None = None
    training_bytes: int = 0

    def download(self) -> dict[str, Weights]:
        """The one-time download of a compressor that uses the teacher."""
        return {self.DOWNLOAD: self.weights}


@dataclass(frozen=True)
class CompressionContext:
    """What a compressor sees when a trial starts.

    Attributes:
        model: The student, freshly built.
        num_rounds: Federated rounds the trial will run.
        teacher: The study's teacher, when the study has one.
    """

    model: nn.Module
    num_rounds: int
    teacher: Teacher | None

    def round_at(self, fraction: float) -> int:
        """The round index at ``fraction`` of the trial's rounds (at most the last one)."""
        return min(round(fraction * self.num_rounds), self.num_rounds - 1)


class Compressor(Component):
    """A compression technique attached to the federated lifecycle.

    A compressor belongs to one ``stage``; a trial uses at most one compressor
    per stage. Call order within a trial:

    1. ``setup(context)``: once, after the student is built.
    2. Every round, on the server: ``on_round_start(weights, round_index)``,
       which may edit the global weights in place (e.g. zero pruned weights).
       It may also change the model's structure: replace submodules of
       ``context.model`` (``model.set_submodule``) and the matching entries of
       ``weights`` (add, remove or resize them), as structured pruning and
       low-rank factorisation do. Clients then train the smaller model, the
       channel carries (and counts) the smaller payloads, and the artifact
       records the new module shapes so the loader rebuilds that model.
    3. Every local step, on each client: the forward pass uses
       ``transform_parameters`` of every compressor in stage order (masks,
       fake quantization with a straight-through estimator), and the loss goes
       through ``training_loss`` (e.g. distillation).
    4. At the end: ``stored_tensors`` says how tensors are written to the
       artifact (e.g. integer codes and scales); tensors no compressor claims
       are stored as float32.

    ``one_time_downloads`` names payloads each client must receive once (e.g.
    teacher weights); the channel sends and counts them.

    Required: ``setup``. Everything else defaults to a no-op.
    """

    kind: ClassVar[str] = "compressor"
    stage: ClassVar[Stage]

    @abstractmethod
    def setup(self, context: CompressionContext) -> None:
        """Prepare for a trial: pick the tensors to act on, keep the teacher, ..."""

    def on_round_start(self, weights: Weights, round_index: int) -> None:
        """Server side, before the weights are broadcast; may edit ``weights`` in place."""

    def transform_parameters(self, params: Weights) -> Weights:
        """The parameters the forward pass uses; must stay differentiable."""
        return params

    def training_loss(self, loss: torch.Tensor, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The local training loss, given the loss of the stages before."""
        return loss

    def one_time_downloads(self) -> dict[str, Weights]:
        """Payloads each participating client downloads once, by name."""
        return {}

    def stored_tensors(self, params: Weights) -> dict[str, QuantizedTensor]:
        """How to store tensors in the artifact, given the transformed parameters so far."""
        return {}
