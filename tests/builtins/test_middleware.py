"""The built-in middleware: conformance, and what they do to real updates."""

from __future__ import annotations

import pytest
import torch
from fedsearch_builtins.middleware import ClipUpdate, ScaleUpdate, update_norm

from fedsearch import PayloadContext
from fedsearch.testing import MiddlewareTestCase

CONTEXT = PayloadContext(round=0, client=2, seed=0)


class TestClipUpdate(MiddlewareTestCase):
    middleware_class = ClipUpdate
    params = {"max_norm": 0.05}


class TestScaleUpdate(MiddlewareTestCase):
    middleware_class = ScaleUpdate
    params = {"factor": 0.5}


def update():
    return {"w": torch.tensor([[3.0, 0.0], [0.0, 4.0]]), "b": torch.tensor([0.0]),
            "steps": torch.tensor(7)}  # fmt: skip


@pytest.mark.parametrize(("max_norm", "expected"), [(1.0, 1.0), (10.0, 5.0)])
def test_clipping_bounds_the_l2_norm_of_the_whole_update(max_norm, expected):
    clipped = ClipUpdate(ClipUpdate.Params(max_norm=max_norm)).on_client_send(update(), CONTEXT)
    assert float(update_norm(clipped)) == pytest.approx(expected)
    assert torch.equal(clipped["steps"], torch.tensor(7))  # integer tensors are left alone
    direction = clipped["w"] / float(update_norm(clipped))
    assert torch.allclose(direction, update()["w"] / 5.0)  # same direction


def test_scaling_multiplies_every_floating_tensor():
    scaled = ScaleUpdate(ScaleUpdate.Params(factor=3.0)).on_client_send(update(), CONTEXT)
    assert torch.equal(scaled["w"], update()["w"] * 3.0)
    assert torch.equal(scaled["steps"], torch.tensor(7))
