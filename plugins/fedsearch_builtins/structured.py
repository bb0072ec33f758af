"""Structured pruning that physically removes filters, channels and neurons."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from fedsearch import (
    ComponentParams,
    CompressionContext,
    Compressor,
    ConfigError,
    Registrar,
    SearchPerLayer,
    SearchRange,
    Weights,
    hookimpl,
)


@dataclass
class _Link:
    """A prunable layer, the norm layers after it and the layer it feeds."""

    path: str
    module: nn.Linear | nn.Conv2d
    norms: list[str]
    consumer: str
    consumer_module: nn.Linear | nn.Conv2d


def layer_chain(model: nn.Module) -> list[_Link]:
    """The model's Linear/Conv2d layers as a chain, each feeding the next.

    Raises:
        ConfigError: The layers do not form a chain whose sizes line up.
    """
    layers: list[tuple[str, nn.Module]] = []
    norms: dict[int, list[str]] = {}
    for path, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            layers.append((path, module))
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d) and layers:
            norms.setdefault(len(layers) - 1, []).append(path)
    links = []
    for index, ((path, module), (next_path, consumer)) in enumerate(pairwise(layers)):
        _check_link(path, module, next_path, consumer)
        links.append(_Link(path, module, norms.get(index, []), next_path, consumer))
    return links


def _check_link(path: str, module: nn.Module, next_path: str, consumer: nn.Module) -> None:
    outputs = module.out_features if isinstance(module, nn.Linear) else module.out_channels
    grouped = isinstance(module, nn.Conv2d) and module.groups != 1
    if isinstance(consumer, nn.Conv2d):
        fits = isinstance(module, nn.Conv2d) and consumer.in_channels == outputs
        grouped = grouped or consumer.groups != 1
    else:
        fits = consumer.in_features % outputs == 0
        fits = fits and (isinstance(module, nn.Conv2d) or consumer.in_features == outputs)
    if grouped or not fits:
        raise ConfigError(
            f"structured pruning needs Linear/Conv2d layers that feed each other in order; "
            f"{path!r} does not feed {next_path!r} (a branching or grouped model?); "
            "use unstructured pruning ('magnitude') for this architecture"
        )


def _norms(tensor: torch.Tensor, dim: int, criterion: str) -> torch.Tensor:
    moved = tensor.detach().movedim(dim, 0).reshape(tensor.shape[dim], -1)
    return moved.abs().sum(1) if criterion == "l1" else moved.pow(2).sum(1).sqrt()


def _resized(module: nn.Module, inputs: int | None = None, outputs: int | None = None) -> nn.Module:
    """The module with new sizes; its values come from the weights, so it is built with
    ``skip_init`` and zeroed (a random init would draw from the global RNG)."""
    if isinstance(module, nn.Linear | nn.Conv2d):
        return _zeroed(_resized_layer(module, inputs, outputs))
    return type(module)(outputs)


def _zeroed(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.zero_()
    return module


def _resized_layer(
    module: nn.Linear | nn.Conv2d, inputs: int | None, outputs: int | None
) -> nn.Module:
    if isinstance(module, nn.Linear):
        return torch.nn.utils.skip_init(
            nn.Linear,
            inputs or module.in_features,
            outputs or module.out_features,
            module.bias is not None,
        )
    return torch.nn.utils.skip_init(
        nn.Conv2d,
        inputs or module.in_channels,
        outputs or module.out_channels,
        module.kernel_size,
        module.stride,
        module.padding,
        module.dilation,
        bias=module.bias is not None,
    )


class StructuredParams(ComponentParams):
    """Knobs of structured pruning."""

    sparsity: Annotated[float, Field(ge=0.0, le=0.95), SearchRange(0.1, 0.75, step=0.05)] = 0.5
    """Share of the filters (convolutions) or neurons (linear layers) removed per layer
    (the layers without a ratio of their own in ``layer_sparsity``)."""
    criterion: Literal["l1", "l2"] = "l1"
    """Norm that ranks filters, channels or neurons; the smallest are removed."""
    method: Literal["filter", "channel"] = "filter"
    """``filter``: rank a layer's outputs by the norm of their weights; ``channel``:
    by the norm of the next layer's weights that read them (He et al. 2017)."""
    layers: Literal["all", "conv", "linear"] = "all"
    """Which hidden layers lose outputs: every one, only convolutions (filter
    pruning), or only linear layers (neuron pruning)."""
    start_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    """Share of the rounds trained dense before the layers are cut (at the server)."""
    per_layer: Annotated[int, Field(ge=0, le=32)] = 0
    """How many of the pruned layers (first first) get their own ratio from
    ``layer_sparsity``; the others use ``sparsity``. Fix it in the search space
    (``"prune.structured.per_layer" = { value = 2 }``) to search per-layer ratios."""
    layer_sparsity: Annotated[
        list[Annotated[float, Field(ge=0.0, le=0.95)]],
        SearchPerLayer(SearchRange(0.1, 0.75, step=0.05), count="per_layer"),
    ] = []
    """Share removed from each of the first ``per_layer`` pruned layers."""

    @model_validator(mode="before")
    @classmethod
    def _fill_ratios(cls, data: Any) -> Any:
        """``per_layer`` alone repeats ``sparsity``; ``layer_sparsity`` alone sets the count."""
        if not isinstance(data, dict):
            return data
        if "per_layer" in data and "layer_sparsity" not in data:
            count = data["per_layer"]
            if isinstance(count, int) and 0 <= count <= 32:
                return {**data, "layer_sparsity": [data.get("sparsity", 0.5)] * count}
        ratios = data.get("layer_sparsity")
        if isinstance(ratios, list) and "per_layer" not in data:
            return {**data, "per_layer": len(ratios)}
        return data

    @model_validator(mode="after")
    def _one_ratio_per_layer(self) -> StructuredParams:
        if len(self.layer_sparsity) != self.per_layer:
            raise ValueError(
                f"layer_sparsity has {len(self.layer_sparsity)} entries but per_layer is "
                f"{self.per_layer}; give one ratio per layer"
            )
        return self


class StructuredPruning(Compressor):
    """L1/L2-norm filter, channel and neuron pruning that makes the model smaller.

    At round ``start_fraction * R`` the server removes ``sparsity`` (or the
    layer's own ``layer_sparsity`` ratio) of every hidden layer's outputs
    (conv filters, linear neurons; never the classifier's) with the smallest
    norm, and the inputs of the next layer that read them;
    biases and batch norms shrink with them. The remaining rounds train,
    transmit and store the smaller dense model; the artifact records the new
    layer shapes and the loader builds that model.
    """

    name = "structured"
    stage = "prune"
    description = "L1/L2 filter, channel and neuron pruning (physically smaller model)"
    Params = StructuredParams

    def setup(self, context: CompressionContext) -> None:
        """Check the layers form a chain; compute the pruning round."""
        self.model = context.model
        layer_chain(self.model)
        self.prune_round = context.round_at(self.params.start_fraction)
        self.kept: dict[str, list[int]] = {}

    def on_round_start(self, weights: Weights, round_index: int) -> None:
        """At the pruning round, cut every hidden layer of model and weights."""
        params = self.params
        if round_index != self.prune_round:
            return
        kinds = {"all": (nn.Linear, nn.Conv2d), "conv": (nn.Conv2d,), "linear": (nn.Linear,)}
        links = [
            link
            for link in layer_chain(self.model)
            if isinstance(link.module, kinds[params.layers])
        ]
        for index, link in enumerate(links):
            ratios = params.layer_sparsity
            sparsity = ratios[index] if index < len(ratios) else params.sparsity
            if sparsity > 0:
                self._cut(link, weights, sparsity)

    def _cut(self, link: _Link, weights: Weights, sparsity: float) -> None:
        module = self.model.get_submodule(link.path)  # its inputs may be cut already
        outputs = weights[f"{link.path}.weight"].shape[0]
        keep_count = max(1, round((1.0 - sparsity) * outputs))
        spatial = weights[f"{link.consumer}.weight"].shape[1] // outputs
        consumer_weight = weights[f"{link.consumer}.weight"]
        if self.params.method == "channel":
            grouped = consumer_weight.reshape(consumer_weight.shape[0], outputs, -1)
            scores = _norms(grouped, 1, self.params.criterion)
        else:
            scores = _norms(weights[f"{link.path}.weight"], 0, self.params.criterion)
        keep = torch.topk(scores, keep_count).indices.sort().values
        self.kept[link.path] = keep.tolist()
        for suffix in ("weight", "bias"):
            if f"{link.path}.{suffix}" in weights:
                weights[f"{link.path}.{suffix}"] = weights[f"{link.path}.{suffix}"][keep].clone()
        for norm in link.norms:
            for name in [key for key in weights if key.startswith(f"{norm}.")]:
                if weights[name].ndim == 1:
                    weights[name] = weights[name][keep].clone()
            self.model.set_submodule(
                norm, _resized(self.model.get_submodule(norm), None, keep_count)
            )
        columns = (keep[:, None] * spatial + torch.arange(spatial)).reshape(-1)
        if isinstance(link.consumer_module, nn.Conv2d):
            columns = keep
        weights[f"{link.consumer}.weight"] = consumer_weight[:, columns].clone()
        self.model.set_submodule(link.path, _resized(module, None, keep_count))
        consumer = self.model.get_submodule(link.consumer)
        self.model.set_submodule(link.consumer, _resized(consumer, keep_count * spatial))


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register structured pruning."""
    register.compressor(StructuredPruning)
