"""Device tiers of a heterogeneous federation (the study's ``[tiers]`` table)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fedsearch.config._strict import StrictModel

SHARE_TOLERANCE = 1e-6
"""How far the tiers' shares may sum from 1."""


class TierConfig(StrictModel):
    """One kind of device: how many clients are like it, how fast they are, what fits on them.

    Attributes:
        name: The tier's name (``fedsearch export --tier NAME``).
        share: Fraction of the clients in this tier (the shares sum to 1).
        speed: Relative compute speed (1.0 computes ``tiers.flops_per_second``).
        budget_bytes: The largest artifact this tier's devices can hold.
        uplink_bandwidth: Client-to-server bytes per second.
        downlink_bandwidth: Server-to-client bytes per second.
        availability: Probability that a sampled client of this tier answers the round
            (1 - dropout probability).
        width_ratios: This tier's searched width ratios (None: the table's).
        bits: This tier's searched bit widths (None: the table's).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    share: float = Field(gt=0.0, le=1.0)
    speed: float = Field(1.0, gt=0.0)
    budget_bytes: int = Field(gt=0)
    uplink_bandwidth: float = Field(125_000.0, gt=0.0)
    downlink_bandwidth: float = Field(1_250_000.0, gt=0.0)
    availability: float = Field(1.0, gt=0.0, le=1.0)
    width_ratios: list[float] | None = Field(None, min_length=1)
    bits: list[int] | None = Field(None, min_length=1)


class TiersConfig(StrictModel):
    """Heterogeneous clients: device tiers, one nested sub-model per tier, simulated time.

    Attributes:
        tiers: The device tiers (at least one; names unique; shares sum to 1).
        slicing: How a tier's sub-model is cut from the global model: ``static``
            (HeteroFL: the first channels of every layer), ``ordered_dropout``
            (FjORD: static slices, and each local step trains a random narrower
            prefix of the client's own width) or ``rolling`` (FedRolex: the
            window of kept channels moves by one channel every round).
        width_ratios: The width ratios searched per tier (its sub-model keeps
            this fraction of every hidden layer's channels).
        bits: The bit widths searched per tier (32: stored as float32).
        sparsity_low: Lowest magnitude-pruning sparsity searched per tier.
        sparsity_high: Highest one (0 and 0 switch pruning off).
        flops_per_second: Compute throughput of a speed-1.0 device.
        deadline_s: Simulated seconds a round waits for replies (None: waits for all).
        stragglers: A client past the deadline is ``drop``-ped, or sends the
            ``partial`` work done by the deadline, aggregated with FedNova's
            normalisation by the number of local steps.
    """

    tiers: list[TierConfig] = Field(min_length=1)
    slicing: Literal["static", "ordered_dropout", "rolling"] = "static"
    width_ratios: list[float] = Field(
        default_factory=lambda: [0.0625, 0.125, 0.25, 0.5, 1.0], min_length=1
    )
    bits: list[int] = Field(default_factory=lambda: [4, 8, 32], min_length=1)
    sparsity_low: float = Field(0.0, ge=0.0, lt=1.0)
    sparsity_high: float = Field(0.9, ge=0.0, lt=1.0)
    flops_per_second: float = Field(1e9, gt=0.0)
    deadline_s: float | None = Field(None, gt=0.0)
    stragglers: Literal["drop", "partial"] = "drop"

    @model_validator(mode="after")
    def _consistent(self) -> TiersConfig:
        names = [tier.name for tier in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be different; got {', '.join(names)}")
        total = sum(tier.share for tier in self.tiers)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise ValueError(f"the tiers' shares sum to {total:.6g}; make them sum to 1")
        for tier in [None, *self.tiers]:
            ratios = self.width_ratios if tier is None else tier.width_ratios or []
            if any(not 0.0 < ratio <= 1.0 for ratio in ratios):
                raise ValueError(f"width_ratios must be in (0, 1]; got {ratios}")
            bits = self.bits if tier is None else tier.bits or []
            if any(value not in (2, 3, 4, 5, 6, 7, 8, 32) for value in bits):
                raise ValueError(f"bits must be 2..8 or 32 (float); got {bits}")
        if self.sparsity_low > self.sparsity_high:
            raise ValueError(
                f"sparsity_low ({self.sparsity_low}) is above sparsity_high ({self.sparsity_high})"
            )
        return self
