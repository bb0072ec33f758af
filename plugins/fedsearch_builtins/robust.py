"""Byzantine-robust aggregation: Krum, Multi-Krum, median, trimmed mean, norm bounding.

Every rule works on the updates the server decoded from the uplink (so on
sparsified or quantized updates as the codec left them), flattened over all
floating tensors; integer tensors (counters) keep the global value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated

import torch
from pydantic import Field

from fedsearch import (
    ClientUpdate,
    ComponentParams,
    Registrar,
    ServerRound,
    Strategy,
    Weights,
    hookimpl,
)
from fedsearch_builtins.middleware import scaled, update_norm
from fedsearch_builtins.privacy import gaussian_noise, round_generator

ByzantineFraction = Annotated[float, Field(ge=0.0, lt=0.5)]


def float_names(weights: Weights) -> list[str]:
    """Names of the floating tensors (the ones aggregation changes)."""
    return [name for name, tensor in weights.items() if tensor.is_floating_point()]


def stacked(updates: Sequence[ClientUpdate], names: Sequence[str]) -> torch.Tensor:
    """The updates as rows of one ``(clients, coordinates)`` float64 matrix."""
    return torch.stack(
        [torch.cat([update.delta[name].double().flatten() for name in names]) for update in updates]
    )


def applied(weights: Weights, names: Sequence[str], step: torch.Tensor) -> Weights:
    """``weights`` plus the flat ``step`` laid back over the tensors ``names``."""
    new = dict(weights)
    offset = 0
    for name in names:
        tensor = weights[name]
        part = step[offset : offset + tensor.numel()].view(tensor.shape)
        new[name] = tensor + part.to(tensor.dtype)
        offset += tensor.numel()
    return new


class RobustStrategy(Strategy):
    """Base of the rules that reduce the stacked updates to one step."""

    def aggregate(
        self, weights: Weights, updates: Sequence[ClientUpdate], server_round: ServerRound
    ) -> Weights:
        """The global weights plus the robust step (unchanged when no update came)."""
        if not updates:
            return dict(weights)
        names = float_names(weights)
        return applied(weights, names, self.step(stacked(updates, names), server_round))

    def step(self, matrix: torch.Tensor, server_round: ServerRound) -> torch.Tensor:
        """One step from the ``(clients, coordinates)`` matrix of updates."""
        raise NotImplementedError


class KrumParams(ComponentParams):
    """Knobs of Krum."""

    byzantine_fraction: ByzantineFraction = 0.2
    """Share of the round's clients assumed malicious (``f = floor(share * n)``)."""


def krum_scores(matrix: torch.Tensor, byzantine: int) -> torch.Tensor:
    """Krum score of every row: summed squared distances to its ``n - f - 2`` nearest rows."""
    count = matrix.shape[0]
    distances = torch.cdist(matrix, matrix).pow(2)
    neighbours = max(1, count - byzantine - 2)
    closest = distances.sort(dim=1).values[:, 1 : neighbours + 1]  # column 0 is the row itself
    return closest.sum(dim=1)


class Krum(RobustStrategy):
    """Krum (Blanchard et al. 2017): the one update closest to its ``n - f - 2`` neighbours."""

    name = "krum"
    description = "Krum: the update nearest its n-f-2 neighbours (Blanchard et al. 2017)"
    Params = KrumParams
    keep_all_honest = False

    def step(self, matrix: torch.Tensor, server_round: ServerRound) -> torch.Tensor:
        """The lowest-scored update, or the mean of the ``n - f`` lowest (Multi-Krum)."""
        count = matrix.shape[0]
        byzantine = math.floor(self.params.byzantine_fraction * count)
        if count == 1:
            return matrix[0]
        order = krum_scores(matrix, byzantine).argsort()
        keep = max(1, count - byzantine) if self.keep_all_honest else 1
        return matrix[order[:keep]].mean(dim=0)


class MultiKrum(Krum):
    """Multi-Krum: the mean of the ``n - f`` updates with the lowest Krum scores."""

    name = "multi_krum"
    description = "Multi-Krum: mean of the n-f best Krum-scored updates"
    keep_all_honest = True


class Median(RobustStrategy):
    """Coordinate-wise median (Yin et al. 2018); an even count averages the middle two."""

    name = "median"
    description = "coordinate-wise median of the client updates (Yin et al. 2018)"

    def step(self, matrix: torch.Tensor, server_round: ServerRound) -> torch.Tensor:
        """The median of every coordinate."""
        ordered = matrix.sort(dim=0).values
        count = matrix.shape[0]
        return (ordered[(count - 1) // 2] + ordered[count // 2]) / 2.0


class TrimmedMeanParams(ComponentParams):
    """Knobs of the trimmed mean."""

    trim_fraction: ByzantineFraction = 0.2
    """Share of the updates dropped at each end of every coordinate (``floor(share * n)``)."""


class TrimmedMean(RobustStrategy):
    """Coordinate-wise trimmed mean (Yin et al. 2018): drop the largest and smallest values."""

    name = "trimmed_mean"
    description = "coordinate-wise trimmed mean of the client updates (Yin et al. 2018)"
    Params = TrimmedMeanParams

    def step(self, matrix: torch.Tensor, server_round: ServerRound) -> torch.Tensor:
        """The mean of every coordinate without its ``k`` lowest and ``k`` highest values."""
        count = matrix.shape[0]
        trim = min(math.floor(self.params.trim_fraction * count), (count - 1) // 2)
        ordered = matrix.sort(dim=0).values
        return ordered[trim : count - trim].mean(dim=0)


class NormBoundParams(ComponentParams):
    """Knobs of norm bounding."""

    norm_bound: Annotated[float, Field(gt=0.0, le=1e6)] = 1.0
    """L2 norm every decoded update is clipped to on the server."""
    noise_stddev: Annotated[float, Field(ge=0.0, le=100.0)] = 0.0
    """Standard deviation of the Gaussian noise added to the averaged update (weak DP)."""


class NormBounding(Strategy):
    """Norm bounding with weak DP (Sun et al. 2019, "Can you really backdoor FL?").

    Every decoded update is clipped to ``norm_bound``, the clipped updates are
    averaged by examples as in FedAvg, and ``N(0, noise_stddev^2)`` is added to
    every coordinate of the average (noise from a torch generator seeded from
    the study-seeded round generator). The noise is not calibrated to a privacy
    budget: use ``dp_fedavg`` for a guarantee.
    """

    name = "norm_bounding"
    description = "norm bounding + weak DP noise against backdoors (Sun et al. 2019)"
    Params = NormBoundParams

    def aggregate(
        self, weights: Weights, updates: Sequence[ClientUpdate], server_round: ServerRound
    ) -> Weights:
        """Clip, average by examples, add noise."""
        if not updates:
            return dict(weights)
        generator = round_generator(server_round)
        total = sum(update.num_examples for update in updates)
        names = float_names(weights)
        mean = {name: torch.zeros_like(weights[name]) for name in names}
        for update in updates:
            norm = float(update_norm(update.delta))
            bounded = update.delta
            if norm > self.params.norm_bound:
                bounded = scaled(update.delta, self.params.norm_bound / norm)
            for name in names:
                mean[name] = mean[name] + bounded[name] * (update.num_examples / total)
        noise = gaussian_noise(mean, self.params.noise_stddev, generator)
        return {
            name: weights[name] + mean[name] + noise[name] if name in mean else tensor
            for name, tensor in weights.items()
        }


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the robust aggregation rules."""
    register.strategy(Krum)
    register.strategy(MultiKrum)
    register.strategy(Median)
    register.strategy(TrimmedMean)
    register.strategy(NormBounding)
