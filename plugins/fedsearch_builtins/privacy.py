"""Client-level differential privacy: DP-FedAvg with central noise, and local noise.

Order of composition on the uplink (see docs/privacy-and-robustness.md):
client training -> client middleware (``local_dp``: clip, then noise) -> uplink
codec (compression, counted by the channel) -> server decodes -> the strategy
(``dp_fedavg``: clip every decoded update, sum, add noise, divide). Central
clipping runs on what the server decoded, so the sensitivity bound holds
whatever the codec did; local noise is added before the codec, and anything
after a DP release (compression included) is post-processing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

import torch
from pydantic import Field, model_validator

from fedsearch import (
    ClientUpdate,
    ComponentParams,
    DifferentiallyPrivate,
    DpParameters,
    Middleware,
    PayloadContext,
    Registrar,
    SearchRange,
    ServerRound,
    Strategy,
    Weights,
    hookimpl,
)
from fedsearch_builtins.middleware import scaled, update_norm

NoiseMultiplier = Annotated[float, Field(ge=0.0, le=1000.0), SearchRange(0.3, 3.0, log=True)]
ClipNorm = Annotated[float, Field(gt=0.0, le=1e6), SearchRange(0.05, 5.0, log=True)]
Delta = Annotated[float, Field(gt=0.0, lt=1.0)]


def gaussian_noise(like: Weights, stddev: float, generator: torch.Generator) -> Weights:
    """Independent ``N(0, stddev^2)`` noise for every floating tensor of ``like``."""
    return {
        name: (torch.randn(tensor.shape, generator=generator, dtype=torch.float64) * stddev).to(
            tensor.dtype
        )
        for name, tensor in like.items()
        if tensor.is_floating_point()
    }


def clipped(update: Weights, clip_norm: float) -> tuple[Weights, float]:
    """``update`` scaled to L2 norm at most ``clip_norm``, and its norm before."""
    norm = float(update_norm(update))
    return (update if norm <= clip_norm else scaled(update, clip_norm / norm)), norm


def round_generator(server_round: ServerRound) -> torch.Generator:
    """A torch generator seeded from the round's (study-seeded) numpy generator."""
    return torch.Generator().manual_seed(int(server_round.rng.integers(2**62)))


class DpFedAvgParams(ComponentParams):
    """Knobs of DP-FedAvg."""

    noise_multiplier: NoiseMultiplier = 1.0
    """Noise standard deviation on the sum of clipped updates, over the clip norm."""
    clip_norm: ClipNorm = 1.0
    """L2 norm each decoded client update is clipped to (the initial one when adaptive)."""
    sampling: Literal["poisson", "fixed_size"] = "poisson"
    """How clients are sampled: independently with probability ``fraction``
    (``poisson``), or ``round(fraction * num_clients)`` without replacement."""
    accountant: Literal["rdp", "pld"] = "rdp"
    """dp-accounting's accountant (``pld`` supports Poisson sampling only)."""
    delta: Delta = 1e-5
    """Target delta of the recorded (epsilon, delta) guarantee."""
    adaptive: bool = False
    """Adapt the clip norm to a quantile of the update norms (Andrew et al. 2021)."""
    target_quantile: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    """Adaptive clipping: share of updates that should end up unclipped."""
    clip_learning_rate: Annotated[float, Field(gt=0.0, le=10.0)] = 0.2
    """Adaptive clipping: geometric step of the clip norm."""
    clipped_count_stddev: Annotated[float, Field(gt=0.0)] | None = None
    """Adaptive clipping: noise on the unclipped count; if None, the larger of the expected
    clients / 20 (Andrew et al.'s choice) and ``noise_multiplier`` (a quarter of the budget)."""
    server_learning_rate: Annotated[float, Field(gt=0.0, le=100.0)] = 1.0
    """What the noisy mean update is multiplied by before it is added."""

    @model_validator(mode="after")
    def _pld_needs_poisson(self) -> DpFedAvgParams:
        if self.accountant == "pld" and self.sampling == "fixed_size":
            raise ValueError(
                "dp-accounting's PLD accountant has no sampling without replacement; "
                'use accountant = "rdp" or sampling = "poisson"'
            )
        return self


class DpFedAvg(Strategy, DifferentiallyPrivate):
    """DP-FedAvg with central noise (McMahan et al. 2018; adaptive clipping of Andrew et al. 2021).

    Per round: clients are sampled (Poisson or fixed size); every decoded
    update is clipped to ``C`` on the server; the server adds
    ``N(0, (z C)^2)`` to their sum and divides by the expected number of
    clients (``q N``, a fixed denominator, so that one client's influence is
    bounded); the result is added to the global weights. With ``adaptive``,
    ``C`` follows the ``target_quantile`` of the update norms through a noisy
    count of unclipped updates; the update noise is then raised to
    ``(z^-2 - (2 sigma_b)^-2)^-1/2`` so that both releases together cost what
    noise ``z`` alone costs (Andrew et al. 2021, Theorem 1). Noise comes from a
    torch generator seeded from the study-seeded round generator.
    """

    name = "dp_fedavg"
    description = "DP-FedAvg: server-side clipping and Gaussian noise (client-level DP)"
    Params = DpFedAvgParams

    def __init__(self, params: ComponentParams | None = None) -> None:
        super().__init__(params)
        self.clip_norm = self.params.clip_norm
        self.num_clients = 0

    def select_clients(self, num_clients: int, server_round: ServerRound) -> list[int]:
        """Poisson: each client independently with probability ``fraction``; else fixed size."""
        self.num_clients = num_clients
        if self.params.sampling == "fixed_size":
            return super().select_clients(num_clients, server_round)
        joined = server_round.rng.random(num_clients) < server_round.fraction
        return [int(client) for client in joined.nonzero()[0]]

    def expected_clients(self, fraction: float) -> float:
        """The fixed denominator: ``q N`` (Poisson) or the fixed sample size."""
        if self.params.sampling == "fixed_size":
            return float(min(self.num_clients, max(1, round(fraction * self.num_clients))))
        return fraction * self.num_clients

    def update_noise_multiplier(self, expected: float) -> float:
        """The noise multiplier of the update sum (raised under adaptive clipping)."""
        z = self.params.noise_multiplier
        if not self.params.adaptive or z == 0.0:
            return z
        count_stddev = self._count_stddev(expected)
        remaining = z**-2 - (2.0 * count_stddev) ** -2
        if remaining <= 0:
            raise ValueError(
                f"clipped_count_stddev {count_stddev} is too small for noise_multiplier {z}; "
                "raise it above noise_multiplier / 2"
            )
        return remaining**-0.5

    def _count_stddev(self, expected: float) -> float:
        if self.params.clipped_count_stddev is not None:
            return self.params.clipped_count_stddev
        return max(expected / 20.0, self.params.noise_multiplier)

    def aggregate(
        self, weights: Weights, updates: Sequence[ClientUpdate], server_round: ServerRound
    ) -> Weights:
        """Clip, sum, add noise, divide by the expected count; adapt the clip norm."""
        generator = round_generator(server_round)
        expected = self.expected_clients(server_round.fraction)
        total = {name: torch.zeros_like(t) for name, t in weights.items() if t.is_floating_point()}
        unclipped = 0
        for update in updates:
            bounded, norm = clipped(update.delta, self.clip_norm)
            unclipped += int(norm <= self.clip_norm)
            for name in total:
                total[name] = total[name] + bounded[name]
        z = self.update_noise_multiplier(expected)
        noise = gaussian_noise(total, z * self.clip_norm, generator)
        rate = self.params.server_learning_rate / expected
        new = {
            name: weights[name] + rate * (total[name] + noise[name]) if name in total else tensor
            for name, tensor in weights.items()
        }
        if self.params.adaptive:
            count_noise = float(torch.randn((), generator=generator, dtype=torch.float64))
            share = (unclipped + count_noise * self._count_stddev(expected)) / expected
            self.clip_norm *= math.exp(
                -self.params.clip_learning_rate * (share - self.params.target_quantile)
            )
        return new

    def dp_parameters(self, num_clients: int, fraction: float, rounds: int) -> DpParameters:
        """Central DP with the sampling this strategy ran."""
        self.num_clients = num_clients
        fixed = self.params.sampling == "fixed_size"
        size = int(self.expected_clients(fraction)) if fixed else None
        return DpParameters(
            noise_multiplier=self.params.noise_multiplier,
            clip_norm=self.params.clip_norm,
            sampling=self.params.sampling,
            sampling_rate=size / num_clients if size is not None else fraction,
            num_clients=num_clients,
            rounds=rounds,
            delta=self.params.delta,
            accountant=self.params.accountant,
            sample_size=size,
        )


class LocalDpParams(ComponentParams):
    """Knobs of local DP."""

    noise_multiplier: NoiseMultiplier = 1.0
    """Noise standard deviation on each client's clipped update, over the clip norm."""
    clip_norm: ClipNorm = 1.0
    """L2 norm each client clips its own update to."""
    accountant: Literal["rdp", "pld"] = "rdp"
    """dp-accounting's accountant."""
    delta: Delta = 1e-5
    """Target delta of the recorded (epsilon, delta) guarantee."""


class LocalDp(Middleware, DifferentiallyPrivate):
    """Local DP: each client clips its update to ``C`` and adds ``N(0, (z C)^2)`` before the uplink.

    The server sees every noisy update, so no sampling amplification applies:
    a client's guarantee is ``rounds`` Gaussian releases whose neighbouring
    inputs are any two clipped updates (sensitivity ``2 C``; dp-accounting's
    event gets noise multiplier ``z / 2``), counted over every round as if the
    client took part in all of them. Noise is drawn from the hook's seeded
    generator; the uplink codec compresses the noisy update (post-processing).
    """

    name = "local_dp"
    description = "local DP: client-side clipping and Gaussian noise on the update"
    Params = LocalDpParams

    def on_client_send(self, update: Weights, context: PayloadContext) -> Weights:
        """Clip to ``clip_norm``, then add Gaussian noise."""
        bounded, _ = clipped(update, self.params.clip_norm)
        stddev = self.params.noise_multiplier * self.params.clip_norm
        noise = gaussian_noise(bounded, stddev, context.generator())
        return {
            name: bounded[name] + noise[name] if name in noise else t for name, t in bounded.items()
        }

    def dp_parameters(self, num_clients: int, fraction: float, rounds: int) -> DpParameters:
        """Local DP over every round (no amplification by sampling)."""
        return DpParameters(
            noise_multiplier=self.params.noise_multiplier,
            clip_norm=self.params.clip_norm,
            sampling="fixed_size",
            sampling_rate=1.0,
            num_clients=num_clients,
            rounds=rounds,
            delta=self.params.delta,
            accountant=self.params.accountant,
            sample_size=num_clients,
            level="local",
        )


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register DP-FedAvg and local DP."""
    register.strategy(DpFedAvg)
    register.middleware(LocalDp)
