"""Simulated time and availability of heterogeneous clients, all drawn from the study seed.

Tier membership, per-round dropouts and client sampling each come from their
own numpy generator seeded with the study seed and a stream number (and the
round), never from the global RNG: the same seed gives the same tiers, the same
dropouts and the same stragglers whatever else the trial does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fedsearch.config import TierConfig, TiersConfig

TIER_STREAM = 0x71E5
DROPOUT_STREAM = 0xD50F
SAMPLE_STREAM = 0x5A4E
TRAINING_FLOPS_PER_FORWARD = 3
"""A training step costs about three forward passes (forward, two backward products)."""


def assign_tiers(tiers: Sequence[TierConfig], num_clients: int, seed: int) -> list[int]:
    """Each client's tier index: shares rounded by largest remainder, clients shuffled by seed."""
    exact = [tier.share * num_clients for tier in tiers]
    counts = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(tiers)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: num_clients - sum(counts)]:
        counts[i] += 1
    labels = np.repeat(np.arange(len(tiers)), counts)
    order = np.random.default_rng([seed, TIER_STREAM]).permutation(num_clients)
    assigned = np.empty(num_clients, dtype=int)
    assigned[order] = labels
    return [int(tier) for tier in assigned]


def sample_clients(num_clients: int, fraction: float, seed: int, round_index: int) -> list[int]:
    """The round's ``max(1, round(fraction * N))`` clients, without replacement."""
    count = min(num_clients, max(1, round(fraction * num_clients)))
    rng = np.random.default_rng([seed, SAMPLE_STREAM, round_index])
    return sorted(int(client) for client in rng.choice(num_clients, size=count, replace=False))


def available_clients(
    clients: Sequence[int],
    tier_of: Sequence[int],
    tiers: Sequence[TierConfig],
    seed: int,
    round_index: int,
) -> list[int]:
    """The sampled clients that answer: each with its tier's availability, one draw per client."""
    draws = np.random.default_rng([seed, DROPOUT_STREAM, round_index]).random(len(tier_of))
    return [c for c in clients if draws[c] < tiers[tier_of[c]].availability]


def forward_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on one example (torch's ``FlopCounterMode``)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, *input_shape))
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class ClientClock:
    """One client's simulated seconds in one round."""

    client: int
    download_s: float
    compute_s: float
    upload_s: float
    steps: int
    """Local steps done (fewer than planned: partial work by the deadline)."""
    on_time: bool

    @property
    def arrival_s(self) -> float:
        """When its update reaches the server."""
        return self.download_s + self.compute_s + self.upload_s


class TierClock:
    """Turns payload bytes and local work into simulated seconds.

    Args:
        config: The study's tiers.
        step_flops: Per tier, the FLOPs of one training example of its sub-model.
    """

    def __init__(self, config: TiersConfig, step_flops: Sequence[float]) -> None:
        self.config = config
        self.step_flops = list(step_flops)

    def seconds_per_example(self, tier: int) -> float:
        """Compute seconds of one training example on a device of ``tier``."""
        speed = self.config.flops_per_second * self.config.tiers[tier].speed
        return TRAINING_FLOPS_PER_FORWARD * self.step_flops[tier] / speed

    def download_s(self, tier: int, payload_bytes: int) -> float:
        """Seconds to receive ``payload_bytes``."""
        return payload_bytes / self.config.tiers[tier].downlink_bandwidth

    def upload_s(self, tier: int, payload_bytes: int) -> float:
        """Seconds to send ``payload_bytes``."""
        return payload_bytes / self.config.tiers[tier].uplink_bandwidth

    def steps_by_deadline(
        self, tier: int, download_s: float, upload_estimate_s: float, batches: Sequence[int]
    ) -> int:
        """How many of the planned batches (their sizes) finish before the deadline."""
        deadline = self.config.deadline_s
        if deadline is None:
            return len(batches)
        left = deadline - download_s - upload_estimate_s
        per_example = self.seconds_per_example(tier)
        done, spent = 0, 0.0
        for size in batches:
            spent += size * per_example
            if spent > left + 1e-12:
                break
            done += 1
        return done

    def round_seconds(self, clocks: Sequence[ClientClock]) -> float:
        """The round lasts until the last on-time arrival, or the deadline if anyone missed it."""
        deadline = self.config.deadline_s
        if deadline is not None and any(not clock.on_time for clock in clocks):
            return deadline
        return max((clock.arrival_s for clock in clocks), default=0.0)
