"""Client-side update transforms: L2-norm clipping (DP-FedAvg) and scaling."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from fedsearch import (
    ComponentParams,
    Middleware,
    PayloadContext,
    Registrar,
    Weights,
    hookimpl,
)


def update_norm(update: Weights) -> torch.Tensor:
    """The L2 norm of an update over all its floating tensors together."""
    squares = [
        tensor.double().pow(2).sum() for tensor in update.values() if tensor.is_floating_point()
    ]
    return torch.stack(squares).sum().sqrt() if squares else torch.zeros((), dtype=torch.float64)


def scaled(update: Weights, factor: float | torch.Tensor) -> Weights:
    """Every floating tensor of ``update`` times ``factor`` (others unchanged)."""
    return {
        name: (tensor * factor).to(tensor.dtype) if tensor.is_floating_point() else tensor
        for name, tensor in update.items()
    }


class ClipParams(ComponentParams):
    """Knobs of update clipping."""

    max_norm: Annotated[float, Field(gt=0.0, le=1e6)] = 1.0
    """Largest L2 norm of a client's update (over all its tensors)."""


class ClipUpdate(Middleware):
    """Per-client update clipping: ``u * min(1, max_norm / ||u||_2)`` before the uplink.

    The clipping of DP-FedAvg (McMahan et al. 2018) and of robust aggregation:
    a client's whole update (local weights minus what it received) is scaled
    down to L2 norm ``max_norm`` when it is longer, and left alone otherwise.
    """

    name = "clip_update"
    description = "per-client update L2-norm clipping (client side)"
    Params = ClipParams

    def on_client_send(self, update: Weights, context: PayloadContext) -> Weights:
        """Scale the update down to ``max_norm`` when it is longer."""
        norm = float(update_norm(update))
        if norm <= self.params.max_norm:
            return update
        return scaled(update, self.params.max_norm / norm)


class ScaleParams(ComponentParams):
    """Knobs of update scaling."""

    factor: Annotated[float, Field(gt=0.0, le=1e6)] = 1.0
    """What every client's update is multiplied by."""


class ScaleUpdate(Middleware):
    """Every client's update multiplied by ``factor`` before the uplink.

    Below 1 it damps client drift (a client-side learning rate); above 1 it is
    the boosting of a model-replacement attack (Bagdasaryan et al. 2020), which
    ``clip_update`` after it bounds.
    """

    name = "scale_update"
    description = "client-side update scaling (damping, or a boosting attack)"
    Params = ScaleParams

    def on_client_send(self, update: Weights, context: PayloadContext) -> Weights:
        """Multiply the update by ``factor``."""
        return scaled(update, self.params.factor)


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register update clipping and scaling."""
    register.middleware(ClipUpdate)
    register.middleware(ScaleUpdate)
