"""Training a round's clients together: ``torch.func.vmap`` over stacked client weights.

The per-client forward pass and loss are vmapped over the stacked weights
(``functional_call`` inside ``vmap``); one ``torch.autograd.grad`` of the sum of
the clients' losses then yields every client's own gradient, since no client's
loss depends on another client's weights. This costs one autograd graph per
step for all clients, far less than ``vmap(grad(...))``, which re-traces the
gradient transform per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.func import functional_call, vmap
from torch.nn import functional as F

from fedsearch._errors import PluginError
from fedsearch.components import Batch, Weights
from fedsearch.federated._functional import (
    LocalSGD,
    clip_gradients,
    proximal_term,
    step_contexts,
    transformed,
)

ClientResult = tuple[Weights, float]


def train_vectorized(
    sgd: LocalSGD, weights: Weights, client_batches: Sequence[Sequence[torch.Tensor]]
) -> list[ClientResult]:
    """Run every client's local SGD in lock step, one ``vmap``-ed gradient per step.

    Step ``s`` trains each client on its ``s``-th batch. Clients whose batch at
    that step has the same size are vmapped together (usually all of them; the
    short last batch of an epoch or a smaller client forms its own group), and
    a client with no batch left simply stops, so every client performs exactly
    the updates the sequential path performs, on the same examples.

    Args:
        sgd: Model, shared data, compressors, learning rate, FedProx term, round.
        weights: The weights every client starts from.
        client_batches: Per client, its batches of example positions, in order.

    Returns:
        Per client, its new weights and its mean training loss.

    Raises:
        PluginError: A compressor's hooks failed under ``torch.func.vmap``.
    """
    try:
        return _train_in_lock_step(sgd, weights, client_batches)
    except (RuntimeError, NotImplementedError) as error:
        if not sgd.compressors:
            raise
        names = ", ".join(repr(compressor.name) for compressor in sgd.compressors)
        raise PluginError(
            f"compressor {names} failed under torch.func.vmap (vectorized training): "
            f"{str(error).splitlines()[0]}; make transform_parameters and training_loss "
            "vmap-safe (torch.where instead of boolean-mask indexing, no .item()) or set "
            "`vectorizable = False` on the class so execution 'auto' trains it sequentially",
            plugin=type(sgd.compressors[0]).__module__.split(".")[0],
        ) from error


def _train_in_lock_step(
    sgd: LocalSGD, weights: Weights, client_batches: Sequence[Sequence[torch.Tensor]]
) -> list[ClientResult]:
    num_clients = len(client_batches)
    names = sgd.trainable(weights)
    stacked = {
        name: weights[name]
        .detach()
        .unsqueeze(0)
        .expand(num_clients, *weights[name].shape)
        .clone()
        .requires_grad_()
        for name in names
    }
    frozen = {name: tensor for name, tensor in weights.items() if name not in stacked}
    anchors = {name: weights[name].detach() for name in names}
    client_losses = _stacked_mlp_losses(sgd) or vmap(
        _client_loss(sgd), in_dims=(0, None, None, 0, 0, 0)
    )
    loss_sums = torch.zeros(num_clients)
    counts = torch.tensor([len(batches) for batches in client_batches])
    for step in range(int(counts.max()) if num_clients else 0):
        for members, positions in _groups_at(client_batches, step):
            everyone = len(members) == num_clients
            index = None if everyone else torch.tensor(members)
            params = (
                stacked
                if index is None
                else {n: t.detach()[index].requires_grad_() for n, t in stacked.items()}
            )
            objectives, losses = client_losses(
                params,
                frozen,
                anchors,
                sgd.inputs[positions],
                sgd.labels[positions],
                positions,
            )
            gradients = torch.autograd.grad(objectives.sum(), list(params.values()))
            gradients = clip_gradients(gradients, sgd.max_grad_norm, per_client=True)
            with torch.no_grad():
                if index is None:
                    torch._foreach_add_(list(stacked.values()), gradients, alpha=-sgd.learning_rate)
                    loss_sums += losses
                else:
                    for (name, tensor), gradient in zip(stacked.items(), gradients, strict=True):
                        tensor[index] = params[name] - sgd.learning_rate * gradient
                    loss_sums[index] += losses
    means = (loss_sums / counts.clamp(min=1)).tolist()
    return [
        (
            {**frozen, **{name: tensor[client].detach() for name, tensor in stacked.items()}},
            means[client],
        )
        for client in range(num_clients)
    ]


def _client_loss(sgd: LocalSGD) -> Callable[..., tuple]:
    model, compressors = sgd.model, sgd.compressors
    steps = step_contexts(compressors, sgd.round, training=True)

    def loss_of(
        params: Weights,
        frozen: Weights,
        anchors: Weights,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        positions: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        weights = transformed({**frozen, **params}, compressors, steps)
        logits = functional_call(model, weights, (inputs,))
        loss = F.cross_entropy(logits, targets)
        batch = Batch(inputs, targets, positions)
        for compressor, step in zip(compressors, steps, strict=True):
            loss = compressor.training_loss(loss, logits, batch, step)
        names = list(params)
        proximal = proximal_term(
            [params[n] for n in names], [anchors[n] for n in names], sgd.proximal_mu
        )
        return loss + proximal, loss.detach()

    return loss_of


def _stacked_mlp_losses(sgd: LocalSGD) -> Callable[..., tuple] | None:
    """Per-client losses of a plain MLP without compressors, by batched matmuls.

    For an ``nn.Sequential`` of ``Flatten``, ``Linear`` and ``ReLU`` the
    stacked forward pass is a chain of ``baddbmm`` calls, which skips the
    per-call tracing cost of ``vmap`` and ``functional_call``. Returns None
    for any other model (or with compressors); the generic path then applies.
    """
    model, proximal_mu = sgd.model, sgd.proximal_mu
    if sgd.compressors or not isinstance(model, torch.nn.Sequential):
        return None
    plan: list[tuple[str, str]] = []
    for name, module in model.named_children():
        if isinstance(module, torch.nn.Flatten) and (module.start_dim, module.end_dim) == (1, -1):
            plan.append(("flatten", name))
        elif isinstance(module, torch.nn.Linear):
            plan.append(("linear", name))
        elif isinstance(module, torch.nn.ReLU):
            plan.append(("relu", name))
        else:
            return None

    def losses_of(
        params: Weights,
        frozen: Weights,
        anchors: Weights,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        positions: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = inputs
        for operation, name in plan:
            if operation == "flatten":
                hidden = hidden.flatten(2)
            elif operation == "relu":
                hidden = torch.relu(hidden)
            else:
                weight = params[f"{name}.weight"].transpose(1, 2)
                bias = params.get(f"{name}.bias")
                hidden = (
                    torch.bmm(hidden, weight)
                    if bias is None
                    else torch.baddbmm(bias.unsqueeze(1), hidden, weight)
                )
        clients, batch, classes = hidden.shape
        losses = (
            F.cross_entropy(
                hidden.reshape(clients * batch, classes), targets.reshape(-1), reduction="none"
            )
            .view(clients, batch)
            .mean(dim=1)
        )
        objectives = losses
        if proximal_mu:
            squared = sum(((params[n] - anchors[n]) ** 2).flatten(1).sum(dim=1) for n in params)
            objectives = losses + 0.5 * proximal_mu * squared
        return objectives, losses.detach()

    return losses_of


def _groups_at(
    client_batches: Sequence[Sequence[torch.Tensor]], step: int
) -> list[tuple[list[int], torch.Tensor]]:
    """Clients with a batch at ``step``, grouped by batch size, with their stacked positions."""
    by_size: dict[int, list[int]] = {}
    for client, batches in enumerate(client_batches):
        if step < len(batches):
            by_size.setdefault(len(batches[step]), []).append(client)
    return [
        (members, torch.stack([client_batches[client][step] for client in members]))
        for members in by_size.values()
    ]
