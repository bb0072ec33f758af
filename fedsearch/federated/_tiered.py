"""The round loop of a heterogeneous federation: one nested sub-model per device tier.

Per round: sample clients; drop those that do not answer (their tier's
availability); send each answering client its tier's slice of the global model
through the channel; train it locally (within the deadline, if any); send the
update back through the channel; average every coordinate over the clients
that trained it. Simulated seconds come from the real payload bytes over the
tier's bandwidth and the local work over the tier's speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from fedsearch.components import Codec, Traffic, Weights
from fedsearch.components._compressor import mixed_seed
from fedsearch.config import FederationConfig, TiersConfig
from fedsearch.federated._channel import SimulatedChannel
from fedsearch.federated._clock import (
    ClientClock,
    TierClock,
    assign_tiers,
    available_clients,
    forward_flops,
    sample_clients,
)
from fedsearch.federated._data import FederatedData
from fedsearch.federated._functional import model_weights
from fedsearch.federated._simulation import RoundCallback, RoundRecord
from fedsearch.federated._slice_training import Narrower, SliceTraining, train_slice
from fedsearch.federated._slicing import SliceAggregator, SlicePlan, slice_plan
from fedsearch.federated._training import accuracy


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


@dataclass(frozen=True)
class TierModel:
    """A tier's sub-model (same family, ``ratio`` as wide) and where it sits in the global one."""

    name: str
    ratio: float
    model: nn.Module


@dataclass(frozen=True)
class TieredRun:
    """Everything a heterogeneous run needs besides the models."""

    data: FederatedData
    federation: FederationConfig
    tiers: TiersConfig
    downlink_codec: Codec
    uplink_codec: Codec
    seed: int


@dataclass(frozen=True)
class RoundEvents:
    """Who took part in a round and how long it took (simulated seconds)."""

    round: int
    sampled: list[int]
    unavailable: list[int]
    late: list[int]
    partial: list[int]
    seconds: float


@dataclass(frozen=True)
class TieredResult:
    """Final global weights, history, traffic and simulated time of a heterogeneous run."""

    weights: Weights
    tier_of: list[int]
    history: list[RoundRecord] = field(default_factory=list)
    events: list[RoundEvents] = field(default_factory=list)
    downlink_bytes: int = 0
    uplink_bytes: int = 0

    @property
    def round_time_s(self) -> float:
        """Simulated seconds of the whole training."""
        return sum(event.seconds for event in self.events)


class TieredFederation:
    """Runs the rounds; see the module docstring.

    Args:
        global_model: The full-width model (its initial weights start the run).
        tiers: One sub-model per configured tier, in the config's order.
        run: Data, settings, codecs and seed.
    """

    def __init__(self, global_model: nn.Module, tiers: Sequence[TierModel], run: TieredRun):
        self.global_model = global_model
        self.tiers = list(tiers)
        self.run = run
        self.global_shapes = _shapes(global_model)
        config = run.tiers
        self.tier_of = assign_tiers(config.tiers, len(run.data.client_indices), run.seed)
        shape = tuple(run.data.train_inputs.shape[1:])
        self.clock = TierClock(config, [forward_flops(t.model, shape) for t in self.tiers])
        self.channel = SimulatedChannel(
            downlink_codec=run.downlink_codec, uplink_codec=run.uplink_codec
        )
        federation = run.federation
        self.training = SliceTraining(
            run.data.train_inputs,
            run.data.train_labels,
            federation.local_epochs,
            federation.batch_size,
            federation.learning_rate,
            federation.max_grad_norm,
        )
        self.widths = [self._widths(tier) for tier in self.tiers]

    def plan(self, tier: int, round_index: int = 0) -> SlicePlan:
        """Where ``tier``'s slice sits in the global model (rolling: moved by the round)."""
        offset = round_index if self.run.tiers.slicing == "rolling" else 0
        return slice_plan(self.global_shapes, _shapes(self.tiers[tier].model), offset)

    def _widths(self, tier: TierModel) -> list[Narrower]:
        if self.run.tiers.slicing != "ordered_dropout":
            return [Narrower(tier.model, None)]
        ratios = sorted({t.ratio for t in self.tiers if t.ratio < tier.ratio})
        narrower = [next(t for t in self.tiers if t.ratio == r) for r in ratios]
        own = _shapes(tier.model)
        return [
            *(Narrower(t.model, slice_plan(own, _shapes(t.model))) for t in narrower),
            Narrower(tier.model, None),
        ]

    def fit(self, on_round: RoundCallback | None = None) -> TieredResult:
        """Train every round; return the final weights and what happened."""
        weights = model_weights(self.global_model)
        history, events, total = [], [], Traffic()
        federation = self.run.federation
        for index in range(federation.rounds):
            weights, event, losses, traffic = self._round(weights, index)
            total += traffic
            events.append(event)
            last = index + 1 == federation.rounds
            record = RoundRecord(
                round=index + 1,
                val_accuracy=self.tier_accuracy(weights)
                if (index + 1) % federation.eval_every == 0 or last
                else None,
                train_loss=float(sum(losses) / len(losses)) if losses else 0.0,
                downlink_bytes=traffic.downlink,
                uplink_bytes=traffic.uplink,
                execution="sequential",
            )
            history.append(record)
            if on_round is not None:
                on_round(record)
        return TieredResult(weights, self.tier_of, history, events, total.downlink, total.uplink)

    def tier_accuracy(self, weights: Weights) -> float:
        """Client-share-weighted validation accuracy of the tiers' (uncompressed) sub-models."""
        data, config = self.run.data, self.run.tiers
        with torch.no_grad():
            return sum(
                tier_config.share
                * accuracy(tier.model, data.val_inputs, data.val_labels, self.plan(i).take(weights))
                for i, (tier, tier_config) in enumerate(zip(self.tiers, config.tiers, strict=True))
            )

    def _round(
        self, weights: Weights, index: int
    ) -> tuple[Weights, RoundEvents, list[float], Traffic]:
        run, config = self.run, self.run.tiers
        num_clients = len(run.data.client_indices)
        sampled = sample_clients(num_clients, run.federation.fraction, run.seed, index)
        answering = available_clients(sampled, self.tier_of, config.tiers, run.seed, index)
        aggregator = SliceAggregator(weights, normalise=config.stragglers == "partial")
        clocks, losses, partial, traffic = [], [], [], Traffic()
        for client in answering:
            clock, loss, used = self._client(client, weights, index, aggregator)
            traffic += used
            clocks.append(clock)
            if loss is not None:
                losses.append(loss)
            if clock.on_time and clock.steps < len(self._batches(client)):
                partial.append(client)
        event = RoundEvents(
            round=index + 1,
            sampled=sampled,
            unavailable=sorted(set(sampled) - set(answering)),
            late=[clock.client for clock in clocks if not clock.on_time],
            partial=partial,
            seconds=self.clock.round_seconds(clocks),
        )
        return aggregator.result(), event, losses, traffic

    def _batches(self, client: int) -> list[int]:
        return self.training.batch_sizes(len(self.run.data.client_indices[client]))

    def _client(
        self, client: int, weights: Weights, index: int, aggregator: SliceAggregator
    ) -> tuple[ClientClock, float | None, Traffic]:
        tier = self.tier_of[client]
        plan = self.plan(tier, index)
        received = self.channel.transfer(plan.take(weights), direction="downlink", client=client)
        down = self.channel.end_round()
        download_s = self.clock.download_s(tier, down.downlink)
        batches = self._batches(client)
        # the update has the slice's shape: its upload is estimated at the download's size
        estimate = self.clock.upload_s(tier, down.downlink)
        steps = self.clock.steps_by_deadline(tier, download_s, estimate, batches)
        partial_ok = self.run.tiers.stragglers == "partial" and steps > 0
        if steps < len(batches) and not partial_ok:  # past the deadline: sends nothing
            compute_s = sum(batches) * self.clock.seconds_per_example(tier)
            return ClientClock(client, download_s, compute_s, 0.0, 0, False), None, down
        generator = torch.Generator().manual_seed(mixed_seed(self.run.seed, index, client))
        indices = self.run.data.client_indices[client]
        trained, loss, done = train_slice(
            received, indices, self.training, self.widths[tier], generator, steps
        )
        delta = {name: trained[name] - received[name] for name in received}
        decoded = self.channel.transfer(delta, direction="uplink", client=client)
        up = self.channel.end_round()
        compute_s = sum(batches[:done]) * self.clock.seconds_per_example(tier)
        clock = ClientClock(
            client, download_s, compute_s, self.clock.upload_s(tier, up.uplink), done, True
        )
        deadline = self.run.tiers.deadline_s
        if deadline is not None and clock.arrival_s > deadline:
            clock = ClientClock(client, download_s, compute_s, clock.upload_s, done, False)
            return clock, loss, down + up
        if done:  # a client without examples has nothing to add
            aggregator.add(decoded, plan, len(indices), done)
        return clock, loss, down + up
