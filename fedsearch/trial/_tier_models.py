"""A tier's sub-model: built from its width ratio, compressed to its own artifact, scored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
import torch
from torch import nn

from fedsearch._errors import ConfigError
from fedsearch.components import Architecture, CompressionContext, Compressor, Weights
from fedsearch.config import TierConfig, TiersConfig
from fedsearch.federated import FederatedData, TieredFederation, TierModel, accuracy
from fedsearch.host import ComponentRegistry
from fedsearch.trial._model_io import architecture_spec, build_artifact, load_model

FLOAT_BITS = 32
"""A tier recipe's ``bits`` that stores float32 (no quantizer)."""


@dataclass(frozen=True)
class TierRecipe:
    """What one tier's search chose: its width ratio, bit width and sparsity."""

    name: str
    width_ratio: float
    bits: int
    sparsity: float


def suggest_recipes(trial: optuna.Trial, config: TiersConfig) -> list[TierRecipe]:
    """Suggest each tier's recipe (dimensions ``tiers.<name>.width_ratio|bits|sparsity``)."""
    recipes = []
    for tier in config.tiers:
        prefix = f"tiers.{tier.name}"
        ratios = tier.width_ratios or config.width_ratios
        ratio = trial.suggest_categorical(f"{prefix}.width_ratio", ratios)
        bits = trial.suggest_categorical(f"{prefix}.bits", tier.bits or config.bits)
        low, high = config.sparsity_low, config.sparsity_high
        sparsity = low if high == low else trial.suggest_float(f"{prefix}.sparsity", low, high)
        recipes.append(TierRecipe(tier.name, float(ratio), int(bits), round(float(sparsity), 4)))
    return recipes


def tier_architecture(
    registry: ComponentRegistry, architecture: Architecture, ratio: float
) -> Architecture:
    """The same family ``ratio`` as wide (``Architecture.width_scaled``).

    Raises:
        ConfigError: The family cannot be sliced.
    """
    scaled = architecture.width_scaled(ratio)
    if scaled is None:
        raise ConfigError(
            f"architecture {architecture.name!r} cannot be sliced into tiers (it does not "
            "implement width_scaled); search a sliceable family (mlp, cnn, dscnn)",
            field="search.slots.architecture",
        )
    params = {**architecture.params.model_dump(mode="json"), **scaled}
    created = registry.create("architecture", architecture.name, params)
    assert isinstance(created, Architecture)
    return created


def tier_models(
    registry: ComponentRegistry,
    architecture: Architecture,
    recipes: list[TierRecipe],
    data: FederatedData,
) -> list[tuple[Architecture, TierModel]]:
    """Each tier's architecture and sub-model (freshly built; only shapes matter)."""
    built = []
    for recipe in recipes:
        tier_arch = tier_architecture(registry, architecture, recipe.width_ratio)
        model = tier_arch.build(data.input_shape, data.num_classes)
        built.append((tier_arch, TierModel(recipe.name, recipe.width_ratio, model)))
    return built


@dataclass(frozen=True)
class TierScore:
    """One tier's compressed artifact and its accuracies (measured on the decoded model)."""

    tier: TierConfig
    recipe: TierRecipe
    artifact: bytes
    model: nn.Module
    val_accuracy: float
    test_accuracy: float

    def as_dict(self, artifact_id: str | None = None) -> dict[str, Any]:
        """The ``tiers`` user-attribute entry."""
        entry: dict[str, Any] = {
            "name": self.tier.name,
            "budget_bytes": self.tier.budget_bytes,
            "model_bytes": len(self.artifact),
            "val_accuracy": self.val_accuracy,
            "test_accuracy": self.test_accuracy,
            "width_ratio": self.recipe.width_ratio,
            "bits": self.recipe.bits,
            "sparsity": self.recipe.sparsity,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }
        if artifact_id is not None:
            entry["artifact_id"] = artifact_id
        return entry


def tier_compressors(
    registry: ComponentRegistry, recipe: TierRecipe, model: nn.Module, weights: Weights
) -> list[Compressor]:
    """Magnitude pruning at the recipe's sparsity, then uniform quantization at its bits.

    Applied to the trained slice (post-training, at the server); the pruner's
    masks are computed on ``weights``, which it zeroes in place.
    """
    compressors = []
    if recipe.sparsity > 0:
        compressors.append(
            registry.create("compressor", "magnitude", {"sparsity": recipe.sparsity})
        )
    if recipe.bits != FLOAT_BITS:
        compressors.append(registry.create("compressor", "uniform", {"bits": recipe.bits}))
    context = CompressionContext(model=model, num_rounds=1, teacher=None, seed=0)
    for compressor in compressors:
        assert isinstance(compressor, Compressor)
        compressor.setup(context)
        compressor.on_round_start(weights, 0)
    return compressors  # type: ignore[return-value]


def score_tiers(
    registry: ComponentRegistry,
    federation: TieredFederation,
    built: list[tuple[Architecture, TierModel]],
    recipes: list[TierRecipe],
    weights: Weights,
) -> list[TierScore]:
    """Cut each tier's slice out of the final weights, compress, serialise, decode, score."""
    data = federation.run.data
    scores = []
    for index, ((tier_arch, tier_model), recipe) in enumerate(zip(built, recipes, strict=True)):
        sliced = {
            name: tensor.detach().clone()
            for name, tensor in federation.plan(index).take(weights).items()
        }
        compressors = tier_compressors(registry, recipe, tier_model.model, sliced)
        spec = architecture_spec(tier_arch, data.input_shape, data.num_classes)
        artifact = build_artifact(spec, sliced, compressors)
        decoded = load_model(artifact, registry)
        with torch.no_grad():
            scores.append(
                TierScore(
                    tier=federation.run.tiers.tiers[index],
                    recipe=recipe,
                    artifact=artifact,
                    model=decoded,
                    val_accuracy=accuracy(decoded, data.val_inputs, data.val_labels),
                    test_accuracy=accuracy(decoded, data.test_inputs, data.test_labels),
                )
            )
    return scores
