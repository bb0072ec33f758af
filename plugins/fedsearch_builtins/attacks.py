"""Malicious clients, as middleware on a fraction of the clients chosen from the trial's seed.

Data poisoning (``on_client_data``, once before training): label flipping and
a pixel-pattern backdoor. Model poisoning (``on_client_send``, every round):
sign flipping, update boosting and Gaussian-noise updates. The malicious
clients are ``round(fraction * num_clients)`` of them, drawn without
replacement from a generator seeded with the trial's seed (the same set for
every round and every attack of a run). Nothing here is searched; a
backdoor's attack success rate on the test split is a user attribute.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from pydantic import Field

from fedsearch import ComponentParams, Middleware, PayloadContext, Registrar, Weights, hookimpl
from fedsearch_builtins.middleware import scaled
from fedsearch_builtins.privacy import gaussian_noise

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
ATTACK_STREAM = 0xA77AC
"""Mixed into the trial seed so that the malicious set is its own random stream."""


def malicious_clients(num_clients: int, fraction: float, trial_seed: int) -> frozenset[int]:
    """The ``round(fraction * num_clients)`` malicious clients of a run with ``trial_seed``."""
    count = round(fraction * num_clients)
    rng = np.random.default_rng([trial_seed, ATTACK_STREAM])
    return frozenset(int(client) for client in rng.permutation(num_clients)[:count])


class AttackParams(ComponentParams):
    """Knobs every attack has."""

    fraction: Fraction = 0.2
    """Share of the clients that are malicious."""


class Attack(Middleware):
    """An attack: acts only on the malicious clients of the run."""

    Params = AttackParams

    def is_malicious(self, context: PayloadContext) -> bool:
        """Whether ``context.client`` is one of the run's malicious clients."""
        if context.client is None:
            return False
        chosen = malicious_clients(context.num_clients, self.params.fraction, context.trial_seed)
        return context.client in chosen


class LabelFlipParams(AttackParams):
    """Knobs of label flipping."""

    num_classes: Annotated[int, Field(ge=2, le=100_000)] = 10
    """Labels ``y`` become ``num_classes - 1 - y``."""


class LabelFlip(Attack):
    """Label flipping (data poisoning): malicious clients train on ``num_classes - 1 - y``."""

    name = "label_flip"
    description = "attack: malicious clients train with flipped labels"
    Params = LabelFlipParams

    def on_client_data(
        self, inputs: torch.Tensor, labels: torch.Tensor, context: PayloadContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flip a malicious client's labels."""
        if not self.is_malicious(context):
            return inputs, labels
        return inputs, self.params.num_classes - 1 - labels


class SignFlipParams(AttackParams):
    """Knobs of sign flipping."""

    scale: Annotated[float, Field(gt=0.0, le=1e6)] = 1.0
    """Malicious updates become ``-scale * update``."""


class SignFlip(Attack):
    """Sign flipping (model poisoning): malicious clients send ``-scale`` times their update."""

    name = "sign_flip"
    description = "attack: malicious clients send their update negated (and scaled)"
    Params = SignFlipParams

    def on_client_send(self, update: Weights, context: PayloadContext) -> Weights:
        """Negate and scale a malicious client's update."""
        return scaled(update, -self.params.scale) if self.is_malicious(context) else update


class BoostParams(AttackParams):
    """Knobs of update boosting."""

    factor: Annotated[float, Field(gt=0.0, le=1e6)] = 10.0
    """Malicious updates are multiplied by this."""


class BoostUpdate(Attack):
    """Update scaling (model poisoning): malicious clients multiply their update by ``factor``."""

    name = "boost_update"
    description = "attack: malicious clients scale their update up"
    Params = BoostParams

    def on_client_send(self, update: Weights, context: PayloadContext) -> Weights:
        """Scale a malicious client's update."""
        return scaled(update, self.params.factor) if self.is_malicious(context) else update


class NoiseUpdateParams(AttackParams):
    """Knobs of Gaussian-noise updates."""

    stddev: Annotated[float, Field(gt=0.0, le=1e6)] = 1.0
    """Standard deviation of every coordinate of a malicious update."""


class NoiseUpdate(Attack):
    """Gaussian-noise updates: malicious clients send ``N(0, stddev^2)`` instead of their update."""

    name = "noise_update"
    description = "attack: malicious clients send Gaussian noise"
    Params = NoiseUpdateParams

    def on_client_send(self, update: Weights, context: PayloadContext) -> Weights:
        """Replace a malicious client's update with noise from the hook's generator."""
        if not self.is_malicious(context):
            return update
        noise = gaussian_noise(update, self.params.stddev, context.generator())
        return {name: noise.get(name, tensor) for name, tensor in update.items()}


class BackdoorParams(AttackParams):
    """Knobs of the pixel-pattern backdoor."""

    target_label: Annotated[int, Field(ge=0)] = 0
    """What inputs carrying the pattern should be classified as."""
    poison_fraction: Fraction = 0.5
    """Share of a malicious client's examples that get the pattern and the target label."""
    patch: Annotated[int, Field(ge=1, le=64)] = 4
    """Side of the square pattern, in pixels, at the bottom-right corner."""
    boost: Annotated[float, Field(gt=0.0, le=1e6)] = 1.0
    """Malicious updates are multiplied by this (model replacement, Bagdasaryan et al. 2020)."""


def with_pattern(inputs: torch.Tensor, patch: int, value: float) -> torch.Tensor:
    """``inputs`` (channels first) with a ``patch`` x ``patch`` square set to ``value``."""
    marked = inputs.clone()
    marked[..., -patch:, -patch:] = value
    return marked


class PixelBackdoor(Attack):
    """Pixel-pattern backdoor (Gu et al. 2017; Bagdasaryan et al. 2020).

    A malicious client stamps a bright square on ``poison_fraction`` of its
    images (chosen by its seeded generator), relabels them ``target_label``,
    trains normally, and boosts its update. ``test_report`` gives
    ``attack_success_rate``: the share of test images of other classes that
    the final model classifies as ``target_label`` once stamped.
    """

    name = "pixel_backdoor"
    description = "attack: pixel-pattern backdoor; attack success rate on the test split"
    Params = BackdoorParams

    def on_client_data(
        self, inputs: torch.Tensor, labels: torch.Tensor, context: PayloadContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stamp and relabel part of a malicious client's examples."""
        if not self.is_malicious(context) or inputs.dim() < 3:
            return inputs, labels
        count = round(self.params.poison_fraction * len(labels))
        chosen = torch.randperm(len(labels), generator=context.generator())[:count]
        inputs, labels = inputs.clone(), labels.clone()
        inputs[chosen] = with_pattern(inputs[chosen], self.params.patch, float(inputs.max()))
        labels[chosen] = self.params.target_label
        return inputs, labels

    def on_client_send(self, update: Weights, context: PayloadContext) -> Weights:
        """Boost a malicious client's update."""
        if not self.is_malicious(context) or self.params.boost == 1.0:
            return update
        return scaled(update, self.params.boost)

    def test_report(
        self, model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, float]:
        """``attack_success_rate`` on the stamped test images not of the target class."""
        others = labels != self.params.target_label
        if inputs.dim() < 3 or not bool(others.any()):
            return {}
        stamped = with_pattern(inputs[others], self.params.patch, float(inputs.max()))
        with torch.no_grad():
            predicted = torch.cat([model(batch).argmax(dim=1) for batch in stamped.split(1024)])
        return {
            "attack_success_rate": float((predicted == self.params.target_label).float().mean())
        }


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the attacks."""
    register.middleware(LabelFlip)
    register.middleware(SignFlip)
    register.middleware(BoostUpdate)
    register.middleware(NoiseUpdate)
    register.middleware(PixelBackdoor)
