"""``federation.max_grad_norm``: every local step's gradient is clipped as torch clips it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedsearch.federated import ClientJob
from fedsearch.federated._functional import clip_gradients
from tests.federated.test_execution import make_trainer, mlp


def _random_gradients(seed: int, scale: float) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(12, 16), (12,), (3, 12), (3,)]
    return [torch.randn(shape, generator=generator) * scale for shape in shapes]


@pytest.mark.parametrize("scale", [0.01, 10.0])  # below the limit (unchanged), above it
def test_clipping_is_torch_clip_grad_norm(scale):
    gradients = _random_gradients(0, scale)
    parameters = [nn.Parameter(torch.zeros_like(g)) for g in gradients]
    for parameter, gradient in zip(parameters, gradients, strict=True):
        parameter.grad = gradient.clone()
    torch.nn.utils.clip_grad_norm_(parameters, max_norm=1.5)
    ours = clip_gradients(gradients, 1.5)
    for parameter, clipped in zip(parameters, ours, strict=True):
        torch.testing.assert_close(clipped, parameter.grad)
    before, after = (
        float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in parts])))
        for parts in (gradients, ours)
    )
    assert after == pytest.approx(min(1.5, before), rel=1e-5)
    assert (before > 1.5) == (scale > 1)  # the two cases are what they say


def test_per_client_clipping_clips_each_client_by_its_own_norm():
    clients = [_random_gradients(seed, scale) for seed, scale in ((1, 0.01), (2, 5.0), (3, 50.0))]
    stacked = [torch.stack(parts) for parts in zip(*clients, strict=True)]
    together = clip_gradients(stacked, 2.0, per_client=True)
    for index, alone in enumerate(clients):
        for batched, single in zip(together, clip_gradients(alone, 2.0), strict=True):
            torch.testing.assert_close(batched[index], single)


def _one_step(max_grad_norm: float | None) -> float:
    """Length of the update of one client's single local step (one batch, one epoch)."""
    model = mlp()
    trainer = make_trainer(
        model, "sequential", batch_size=60, epochs=1, max_grad_norm=max_grad_norm
    )
    start = {name: t.detach().clone() for name, t in model.state_dict().items()}
    outcome = trainer.train_clients(start, [ClientJob(0, np.arange(60))])
    ((trained, _),) = outcome.results
    moved = torch.cat([(trained[name] - start[name]).flatten() for name in start])
    return float(torch.linalg.vector_norm(moved))


def test_a_local_step_moves_at_most_learning_rate_times_the_limit():
    unclipped = _one_step(None)
    limit = unclipped / 0.2 / 4  # a quarter of this step's gradient norm (learning rate 0.2)
    assert _one_step(limit) == pytest.approx(0.2 * limit, rel=1e-4)
    assert _one_step(limit * 8) == pytest.approx(unclipped, rel=1e-6)  # under the limit: as is
