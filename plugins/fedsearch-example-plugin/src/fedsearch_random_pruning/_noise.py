"""A middleware: Gaussian noise on every client's update."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from fedsearch import ComponentParams, Middleware, PayloadContext, Weights


class GaussianNoiseParams(ComponentParams):
    """Knobs of update noise."""

    sigma: Annotated[float, Field(ge=0.0, le=100.0)] = 0.01
    """Standard deviation of the noise added to every value of an update."""


class GaussianNoise(Middleware):
    """Adds ``N(0, sigma^2)`` noise to each floating value of a client's update.

    The noise comes from the generator of the payload context (seeded from the
    trial seed, the round and the client), so a trial stays reproducible and
    the global RNG is never touched. Listed after ``clip_update`` it is the
    client-side Gaussian mechanism of DP-FedAvg (without privacy accounting).
    """

    name = "gaussian_noise"
    description = "Gaussian noise on client updates (seeded per client and round)"
    Params = GaussianNoiseParams

    def on_client_send(self, update: Weights, context: PayloadContext) -> Weights:
        """The update plus noise."""
        generator = context.generator()
        return {
            name: tensor
            + self.params.sigma
            * torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype).to(tensor.device)
            if tensor.is_floating_point()
            else tensor
            for name, tensor in update.items()
        }
