"""Compressor components: pruning, quantization, distillation, low-rank factorisation."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
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
            given as a pretrained file (``[teacher] pretrained``) has 0 here
            and is charged its download only.
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


def mixed_seed(*values: int) -> int:
    """One 64-bit seed from several integers (a trial seed, a client id, ...)."""
    return int(np.random.SeedSequence([abs(v) for v in values]).generate_state(2, np.uint64)[0])


@dataclass(frozen=True)
class CompressionContext:
    """What a compressor sees when a trial starts.

    Attributes:
        model: The student, freshly built.
        num_rounds: Federated rounds the trial will run.
        teacher: The study's teacher, when the study has one.
        seed: The trial's seed; seed per-client generators from it (never the
            global RNG).
    """

    model: nn.Module
    num_rounds: int
    teacher: Teacher | None
    seed: int = 0

    def client_generator(self, client: int) -> torch.Generator:
        """A generator for ``client`` alone, seeded from the trial's seed and the client id."""
        return torch.Generator().manual_seed(mixed_seed(self.seed, client))

    def round_at(self, fraction: float) -> int:
        """The round index at ``fraction`` of the trial's rounds (at most the last one)."""
        return min(round(fraction * self.num_rounds), self.num_rounds - 1)


@dataclass(frozen=True)
class StepContext:
    """Where a per-step hook (``transform_parameters``, ``training_loss``) runs.

    Attributes:
        round: Index of the federated round, from 0.
        client: The client training; None on the server (evaluation, the
            artifact) and for a group of clients trained together under
            ``torch.func.vmap``.
        training: True in local training; False when the model is evaluated
            or stored.
        state: This compressor's state for ``client``: the object its
            ``client_state(client)`` returned, kept by the runtime from one
            round to the next; None on the server and for stateless compressors.
    """

    round: int
    client: int | None
    training: bool
    state: Any = None

    @classmethod
    def evaluating(cls, round_index: int) -> StepContext:
        """The server's context: evaluation or storing, no client, no state."""
        return cls(round=round_index, client=None, training=False)


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
    3. The first time a client trains: ``client_state(client)``, once per
       client; the runtime keeps what it returns for that client alone and
       discards it when the trial ends.
    4. On the clients, before a group of clients that received the same
       weights trains: ``on_local_training_start(received, round_index)``.
       It may derive settings from ``received`` that each of those clients
       could compute from what it received (e.g. a quantization step chosen
       once a round instead of at every step).
    5. Every local step, on each client: the forward pass uses
       ``transform_parameters(params, step)`` of every compressor in stage
       order (masks, fake quantization with a straight-through estimator),
       and the loss goes through ``training_loss(loss, logits, batch, step)``
       (e.g. distillation). ``step`` (a ``StepContext``) says the round, the
       client, whether it is training, and carries this compressor's state for
       that client. Evaluation and the artifact call ``transform_parameters``
       with ``step.training`` False and no client.
    6. At the end: ``stored_tensors`` says how tensors are written to the
       artifact (e.g. integer codes and scales); tensors no compressor claims
       are stored as float32.

    No side channels: on a client, ``transform_parameters`` and
    ``training_loss`` may use only the params they are given (what the client
    received and trained), the step's state, and public configuration (params,
    the round schedule); never state the server-side hooks computed from other
    clients' data. ``one_time_downloads`` names payloads each client must
    receive once (e.g. teacher weights); the channel sends and counts them.
    Never touch the global RNG: seed a ``torch.Generator`` from
    ``context.seed`` (and the client id) instead.

    Vectorized training. For models without convolutions, ``execution =
    "auto"`` trains a round's clients together under ``torch.func.vmap``:
    ``transform_parameters`` and ``training_loss`` then see batched tensors and
    one call serves every client of a group (``step.client`` is None, no state).
    They must be vmap-safe: no boolean-mask indexing (``x[mask] = ...``), no
    ``.item()`` or Python branches on tensor values, no in-place writes into
    inputs; use ``torch.where`` and arithmetic instead. A compressor that
    cannot be, sets ``vectorizable = False``; one that keeps per-client state
    is never vectorized. ``auto`` then trains sequentially, and an explicit
    ``execution = "vectorized"`` is refused. ``fedsearch.testing
    .CompressorTestCase`` runs both paths.

    Required: ``setup``. Everything else defaults to a no-op.
    """

    kind: ClassVar[str] = "compressor"
    stage: ClassVar[Stage]
    vectorizable: ClassVar[bool] = True
    """False when the per-step hooks cannot run under ``torch.func.vmap``."""

    @abstractmethod
    def setup(self, context: CompressionContext) -> None:
        """Prepare for a trial: pick the tensors to act on, keep the teacher, ..."""

    def on_round_start(self, weights: Weights, round_index: int) -> None:
        """Server side, before the weights are broadcast; may edit ``weights`` in place."""

    def on_local_training_start(self, received: Weights, round_index: int) -> None:
        """Client side, before clients train from ``received``; derive per-round settings."""

    def client_state(self, client: int) -> Any:
        """A fresh per-client state for ``client`` (None: the compressor keeps none).

        Override to keep something per client (a regressor, running
        statistics); it reaches every step of that client as ``step.state``
        and no other client ever sees it.
        """
        return None

    def transform_parameters(self, params: Weights, step: StepContext) -> Weights:
        """The parameters the forward pass uses; must stay differentiable."""
        return params

    def training_loss(
        self, loss: torch.Tensor, logits: torch.Tensor, batch: Batch, step: StepContext
    ) -> torch.Tensor:
        """The local training loss, given the loss of the stages before."""
        return loss

    def one_time_downloads(self) -> dict[str, Weights]:
        """Payloads each participating client downloads once, by name."""
        return {}

    def stored_tensors(self, params: Weights) -> dict[str, QuantizedTensor]:
        """How to store tensors in the artifact, given the transformed parameters so far."""
        return {}


def keeps_client_state(compressor: Compressor | type[Compressor]) -> bool:
    """Whether the compressor declares per-client state (overrides ``client_state``)."""
    cls = compressor if isinstance(compressor, type) else type(compressor)
    return cls.client_state is not Compressor.client_state


def can_vectorize(compressor: Compressor | type[Compressor]) -> bool:
    """Whether the compressor may train under ``torch.func.vmap``."""
    return compressor.vectorizable and not keeps_client_state(compressor)
